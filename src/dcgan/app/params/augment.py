"""params.yaml's ``augment`` section, read by the augment stage."""

from __future__ import annotations

from typing import ClassVar

from dcgan.app.params.typed import Bool, Float, Int, Section, fail, section


@section
class AugmentParams(Section):
    """Offline augmentation: K augmented copies appended to the originals."""

    SECTION: ClassVar[str] = "augment"

    copies: Int
    """K: augmented copies per original image (0 = originals only)."""
    hflip: Bool
    """Random horizontal flip (off for digits: a mirrored 3 is not a digit)."""
    crop_scale_min: Float
    """Random resized crop keeps between this share of the area and all of it."""
    rotate_degrees: Float
    """Maximum random rotation, in degrees."""
    translate: Float
    """Maximum random shift, as a fraction of the image size."""
    seed: Int
    """Seed of the copies' random draws: its own, not base.seed, so that retraining with another
    seed trains on the same augmented set (and reruns neither augment nor the evaluator)."""

    def check(self, s: str) -> None:
        if self.seed < 0:
            fail(f"{s}.seed", "must be >= 0", self.seed)
        if self.copies < 0:
            fail(f"{s}.copies", "must be >= 0", self.copies)
        if not 0.1 <= self.crop_scale_min <= 1.0:
            fail(f"{s}.crop_scale_min", "must be in [0.1, 1]", self.crop_scale_min)
        if not 0.0 <= self.rotate_degrees <= 180.0:
            fail(f"{s}.rotate_degrees", "must be in [0, 180]", self.rotate_degrees)
        if not 0.0 <= self.translate < 0.5:
            fail(f"{s}.translate", "must be in [0, 0.5)", self.translate)
