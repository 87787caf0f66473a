"""params.yaml's ``prepare`` section, read by the prepare stage (image_size and channels by train too)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from dcgan.app.params.typed import Bool, Float, Int, Section, Str, fail, section


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
    image_size: Int
    """Square output size in pixels: a power of two from 16 to 256."""
    channels: Int
    """1 (grayscale) or 3 (RGB); images are converted to it."""
    holdout_fraction: Float
    """Share of images kept out of training, for the FID floor and reconstruction."""
    split_seed: Int
    """Seed of the train/holdout split (and of the max_images subset): its own, not base.seed, so
    that retraining with another seed keeps the split and the instrument built on it."""
    max_images: Int
    """Use at most this many images before the split (0 = all); handy for quick runs."""
    lsun_category: Str
    """With dataset lsun: the LMDB export read, root/<lsun_category>_lmdb (e.g. bedroom_train)."""
    workers: Int | Literal["auto"]
    """Processes decoding image files or records (auto = the CPU count); the output is the same
    for any count."""

    def check(self, s: str) -> None:
        if not (is_pow2(self.image_size) and 16 <= self.image_size <= 256):
            fail(f"{s}.image_size", "must be a power of two from 16 to 256", self.image_size)
        if self.channels not in (1, 3):
            fail(f"{s}.channels", "must be 1 or 3", self.channels)
        if not 0.0 < self.holdout_fraction < 1.0:
            fail(f"{s}.holdout_fraction", "must be between 0 and 1 (exclusive)", self.holdout_fraction)
        if self.split_seed < 0:
            fail(f"{s}.split_seed", "must be >= 0", self.split_seed)
        if self.max_images < 0:
            fail(f"{s}.max_images", "must be >= 0 (0 means all)", self.max_images)
        if self.workers != "auto" and self.workers < 1:
            fail(f"{s}.workers", "must be >= 1 or auto", self.workers)
        if not re.fullmatch(r"[a-z0-9_]+", self.lsun_category):
            fail(f"{s}.lsun_category", "must be a name like bedroom_train (lowercase, digits, _)",
                  self.lsun_category)
        if self.dataset == "folder" and not self.root:
            fail(f"{s}.root", "must name the image folder when dataset is 'folder'", self.root)
