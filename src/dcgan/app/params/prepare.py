"""params.yaml's ``prepare`` section, read by the prepare stage (image_size and channels by train too)."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from dcgan.app.params.typed import Bool, Float, Int, Section, Str, at_least, fail, rule, section


def is_pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


@section
class PrepareParams(Section):
    """Which dataset to load and how to shape it."""

    SECTION: ClassVar[str] = "prepare"

    dataset: Str
    """A name in the loader registry (dcgan.data.loaders; the validate stage checks it): digits
    (scikit-learn's bundled handwritten digits, offline), mnist, fashion_mnist, cifar10, celeba,
    lsun, folder."""
    root: Str | None
    """Local directory holding the dataset files (not used by digits)."""
    download: Bool
    """Let torchvision download mnist/fashion_mnist/cifar10/celeba into root when missing."""
    image_size: Annotated[Int, rule(lambda v: is_pow2(v) and 16 <= v <= 256,
                                    "must be a power of two from 16 to 256")]
    """Square output size in pixels: a power of two from 16 to 256."""
    channels: Annotated[Int, rule(lambda v: v in (1, 3), "must be 1 or 3")]
    """1 (grayscale) or 3 (RGB); images are converted to it."""
    holdout_fraction: Annotated[Float, rule(lambda v: 0.0 < v < 1.0, "must be between 0 and 1 (exclusive)")]
    """Share of images kept out of training, for the FID floor and reconstruction."""
    split_seed: Annotated[Int, at_least(0)]
    """Seed of the train/holdout split (and of the max_images subset): its own, not base.seed, so
    that retraining with another seed keeps the split and the instrument built on it."""
    max_images: Annotated[Int, at_least(0, " (0 means all)")]
    """Use at most this many images before the split (0 = all); handy for quick runs."""
    lsun_category: Annotated[Str, rule(lambda v: re.fullmatch(r"[a-z0-9_]+", v) is not None,
                                       "must be a name like bedroom_train (lowercase, digits, _)")]
    """With dataset lsun: the LMDB export read, root/<lsun_category>_lmdb (e.g. bedroom_train)."""
    workers: Annotated[Int, at_least(1, " or auto")] | Literal["auto"]
    """Processes decoding image files or records (auto = the CPU count, or this process alone
    below 2,000 images, where starting workers costs more than it saves); the output is the same
    for any count."""

    def check(self, s: str) -> None:
        if self.dataset == "folder" and not self.root:
            fail(f"{s}.root", "must name the image folder when dataset is 'folder'", self.root)
