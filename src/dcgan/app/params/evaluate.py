"""params.yaml's ``evaluate`` section, read by the evaluate stage; the metric names are checked here, against the
metric catalogue (:mod:`dcgan.metrics.registry`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from dcgan.app.params.typed import Count, Int, Positive, Section, Str, at_least, rule, section
from dcgan.metrics.registry import metric_names


@section
class EvaluateParams(Section):
    """Scoring the samples (with the evaluator's feature extractor)."""

    SECTION: ClassVar[str] = "evaluate"

    metrics: Annotated[tuple[Annotated[Str, rule(lambda v: v in metric_names(),
                                                 f"must be one of {', '.join(metric_names())}")], ...],
                       rule(len, "must be a non-empty list", list),
                       rule(lambda v: len(set(v)) == len(v), "must not repeat a metric", list)]
    """Which metrics to compute: names in the catalogue, dcgan.metrics.registry.CATALOGUE (a wrong
    name is refused with the list)."""
    num_samples: Annotated[Int, at_least(0, " (0 = match the holdout size)")]
    """Generated images scored (0 = as many as held-out real images, so metrics and floors compare)."""
    batch_size: Count
    """Feature-extraction batch size (the samples)."""
    is_splits: Count
    """Splits for the Inception Score mean/std."""
    kid_subsets: Count
    """Random subsets for KID's mean/std."""
    kid_subset_size: Count
    """Images per KID subset (capped at the number scored)."""
    pr_k: Count
    """k of the k-NN manifolds of improved precision/recall."""
    pr_max_images: Annotated[Int, at_least(2)]
    """Precision/recall compares all pairs (O(n^2)): it runs on a seeded subset of at most this
    many generated and as many real images (the floor too)."""
    recon_images: Annotated[Int, at_least(0, " (0 = skip)")]
    """Held-out images reconstructed through the generator (0 = skip reconstruction metrics)."""
    recon_steps: Count
    """Adam steps on z per restart when inverting the generator by latent optimisation."""
    recon_restarts: Count
    """Random starts per image; the best reconstruction is kept."""
    recon_lr: Positive
    """Adam learning rate for latent optimisation."""
    bootstrap: Annotated[Int, rule(lambda v: v == 0 or v >= 2, "must be 0 (off) or >= 2 resamples")]
    """Seeded bootstrap resamples of the generated and reference features behind each score's
    standard error and 95% interval (``<key>_se``, ``_ci_low``, ``_ci_high``; 0 = none, and the
    promotion gate then cannot tell a gain from noise)."""
