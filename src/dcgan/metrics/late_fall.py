"""When a run's quality "fell late": one threshold shared by the train stage, which logs it, and
the report, which says so. Apart from the metric catalogue (:mod:`dcgan.metrics.registry`) so
that a new metric does not rerun training."""

LATE_FALL = 1.5
"""A run whose last in-training FID is at least this many times its best one "fell late": the
train stage logs it and the report says so (plain DCGAN's late collapse)."""
