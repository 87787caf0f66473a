"""params.yaml's ``sample`` section, read by the sample stage."""

from __future__ import annotations

from typing import ClassVar, Literal

from dcgan.app.params.typed import Bool, Float, Int, Section, fail, section


@section
class SampleParams(Section):
    """Drawing images from the trained generator."""

    SECTION: ClassVar[str] = "sample"

    num_samples: Int
    """How many images to generate into data/samples/samples.npy."""
    batch_size: Int
    """Generator batch size while sampling."""
    grid_size: Int
    """Images shown in reports/samples.png."""
    drs: Bool
    """Discriminator Rejection Sampling: keep samples with probability from D's logits."""
    drs_burnin: Int
    """Samples whose D logits give the first estimate of the maximum logit."""
    drs_percentile: Float | None
    """gamma = this percentile of F per batch (higher keeps fewer); null: gamma = 0, exact
    rejection sampling if D were optimal."""
    generator: Literal["auto", "best", "last"]
    """Which generator to sample: best by in-training FID, the last one, or auto (the last when G
    was trained with an EMA, else the best); evaluate scores the same one (samples.json records
    which)."""

    def check(self, s: str) -> None:
        if self.drs_percentile is not None and not 0.0 <= self.drs_percentile <= 100.0:
            fail(f"{s}.drs_percentile", "must be in [0, 100] or null", self.drs_percentile)
        for k in ("num_samples", "batch_size", "grid_size", "drs_burnin"):
            if getattr(self, k) < 1:
                fail(f"{s}.{k}", "must be >= 1", getattr(self, k))
