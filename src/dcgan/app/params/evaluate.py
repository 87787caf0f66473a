"""params.yaml's ``evaluate`` section, read by the evaluate stage; the metric names are checked here, against the
metric catalogue (:mod:`dcgan.metrics.registry`)."""

from __future__ import annotations

from typing import ClassVar

from dcgan.app.params.typed import Float, Int, Section, Str, fail, section
from dcgan.metrics.registry import metric_names


@section
class EvaluateParams(Section):
    """Scoring the samples (with the evaluator's feature extractor)."""

    SECTION: ClassVar[str] = "evaluate"

    metrics: tuple[Str, ...]
    """Which registered metrics to compute: any of fid, is, kid, pr."""
    num_samples: Int
    """Generated images scored (0 = as many as held-out real images, so metrics and floors compare)."""
    batch_size: Int
    """Feature-extraction batch size (the samples)."""
    is_splits: Int
    """Splits for the Inception Score mean/std."""
    kid_subsets: Int
    """Random subsets for KID's mean/std."""
    kid_subset_size: Int
    """Images per KID subset (capped at the number scored)."""
    pr_k: Int
    """k of the k-NN manifolds of improved precision/recall."""
    pr_max_images: Int
    """Precision/recall compares all pairs (O(n^2)): it runs on a seeded subset of at most this
    many generated and as many real images (the floor too)."""
    recon_images: Int
    """Held-out images reconstructed through the generator (0 = skip reconstruction metrics)."""
    recon_steps: Int
    """Adam steps on z per restart when inverting the generator by latent optimisation."""
    recon_restarts: Int
    """Random starts per image; the best reconstruction is kept."""
    recon_lr: Float
    """Adam learning rate for latent optimisation."""
    bootstrap: Int
    """Seeded bootstrap resamples of the generated and reference features behind each score's
    standard error and 95% interval (``<key>_se``, ``_ci_low``, ``_ci_high``; 0 = none, and the
    promotion gate then cannot tell a gain from noise)."""

    def check(self, s: str) -> None:
        if not self.metrics:
            fail(f"{s}.metrics", "must be a non-empty list", [])
        for i, name in enumerate(self.metrics):
            if name not in metric_names():
                fail(f"{s}.metrics[{i}]", f"must be one of {', '.join(metric_names())}", name)
        if len(set(self.metrics)) != len(self.metrics):
            fail(f"{s}.metrics", "must not repeat a metric", list(self.metrics))
        if self.num_samples < 0:
            fail(f"{s}.num_samples", "must be >= 0 (0 = match the holdout size)", self.num_samples)
        for k in ("batch_size", "is_splits", "kid_subsets", "kid_subset_size", "pr_k",
                  "recon_steps", "recon_restarts"):
            if getattr(self, k) < 1:
                fail(f"{s}.{k}", "must be >= 1", getattr(self, k))
        if self.pr_max_images < 2:
            fail(f"{s}.pr_max_images", "must be >= 2", self.pr_max_images)
        if self.recon_images < 0:
            fail(f"{s}.recon_images", "must be >= 0 (0 = skip)", self.recon_images)
        if self.bootstrap < 0 or self.bootstrap == 1:
            fail(f"{s}.bootstrap", "must be 0 (off) or >= 2 resamples", self.bootstrap)
        if not self.recon_lr > 0:
            fail(f"{s}.recon_lr", "must be > 0", self.recon_lr)
