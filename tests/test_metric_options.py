"""Each metric declares the evaluate options that change its numbers (dcgan.metrics.suite's
IMPLEMENTATIONS); the protocol the evaluate stage writes, which the promotion gate and
``dcgan review`` compare, is built from those declarations alone."""

from __future__ import annotations

import dataclasses

from dcgan.metrics import suite
from dcgan.metrics.suite import IMPLEMENTATIONS, ScoreOptions, options_protocol

OPTS = ScoreOptions(is_splits=10, kid_subsets=50, kid_subset_size=1000, pr_k=3, pr_max_images=50)


def test_every_score_option_is_declared_by_the_metric_that_reads_it():
    """A new field of ScoreOptions that no metric declares fails here: it would change numbers
    without the protocol saying so."""
    declared = [o for impl in IMPLEMENTATIONS.values() for o in impl.options]
    assert sorted(declared) == sorted(f.name for f in dataclasses.fields(ScoreOptions))


def test_the_protocol_holds_each_option_as_used_on_the_scored_images():
    assert options_protocol(OPTS, 120).items() >= {"is_splits": 10, "kid_subsets": 50, "kid_subset_size": 120,
                                                   "pr_k": 3, "pr_images": 50}.items()
    assert options_protocol(OPTS, 2000)["kid_subset_size"] == 1000


def test_a_newly_declared_option_reaches_the_protocol_without_another_edit(monkeypatch):
    kid = IMPLEMENTATIONS["kid"]
    monkeypatch.setitem(suite.IMPLEMENTATIONS, "kid", dataclasses.replace(
        kid, protocol=lambda o, n: {**kid.protocol(o, n), "kid_kernel_degree": 3}))
    assert options_protocol(OPTS, 120)["kid_kernel_degree"] == 3
