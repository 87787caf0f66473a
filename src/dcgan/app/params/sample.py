"""params.yaml's ``sample`` section, read by the sample stage."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from dcgan.app.params.typed import Bool, Count, Float, Section, section, within


@section
class SampleParams(Section):
    """Drawing images from the trained generator."""

    SECTION: ClassVar[str] = "sample"

    num_samples: Count
    """How many images to generate into data/samples/samples.npy."""
    batch_size: Count
    """Generator batch size while sampling."""
    grid_size: Count
    """Images shown in reports/samples.png."""
    drs: Bool
    """Discriminator Rejection Sampling: keep samples with probability from D's logits."""
    drs_burnin: Count
    """Samples whose D logits give the first estimate of the maximum logit."""
    drs_percentile: Annotated[Float, within(0, 100, closed=True, note=" or null")] | None
    """gamma = this percentile of F per batch (higher keeps fewer); null: gamma = 0, exact
    rejection sampling if D were optimal."""
    generator: Literal["auto", "best", "last"]
    """Which generator to sample: best by in-training FID, the last one, or auto (the last when G
    was trained with an EMA, else the best); evaluate scores the same one (samples.json records
    which)."""
