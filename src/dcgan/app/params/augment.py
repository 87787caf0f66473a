"""params.yaml's ``augment`` section, read by the augment stage."""

from __future__ import annotations

from typing import Annotated, ClassVar

from dcgan.app.params.typed import Bool, Float, Int, Section, at_least, section, within


@section
class AugmentParams(Section):
    """Offline augmentation: K augmented copies appended to the originals."""

    SECTION: ClassVar[str] = "augment"

    copies: Annotated[Int, at_least(0)]
    """K: augmented copies per original image (0 = originals only)."""
    hflip: Bool
    """Random horizontal flip (off for digits: a mirrored 3 is not a digit)."""
    crop_scale_min: Annotated[Float, within(0.1, 1, closed=True)]
    """Random resized crop keeps between this share of the area and all of it."""
    rotate_degrees: Annotated[Float, within(0, 180, closed=True)]
    """Maximum random rotation, in degrees."""
    translate: Annotated[Float, within(0, 0.5)]
    """Maximum random shift, as a fraction of the image size."""
    seed: Annotated[Int, at_least(0)]
    """Seed of the copies' random draws: its own, not base.seed, so that retraining with another
    seed trains on the same augmented set (and reruns neither augment nor the evaluator)."""
