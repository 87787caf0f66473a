"""uint8 image arrays (N, C, H, W) on disk: save, load with checks, split, statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from dcgan.core import files
from dcgan.core.errors import UserError
from dcgan.data.store import NpyReader


def _check(path: Path, dtype: np.dtype, shape: tuple[int, ...], channels: int | None,
           size: int | None) -> None:
    if dtype != np.uint8 or len(shape) != 4:
        raise UserError(f"image array {path} must be uint8 with shape (N, C, H, W), got {dtype} {shape}")
    n, c, h, w = shape
    if n == 0:
        raise UserError(f"image array {path} holds no images")
    if channels is not None and c != channels:
        raise UserError(f"image array {path} has {c} channels but {channels} were expected")
    if size is not None and (h, w) != (size, size):
        raise UserError(f"image array {path} has images of {h}x{w} but {size}x{size} were expected")


def load_images(path: str | Path, channels: int | None = None, size: int | None = None) -> np.ndarray:
    """Load a .npy of uint8 images (N, C, H, W) into memory, checking dtype, rank, and optionally
    C and H=W=size (small arrays; :func:`open_images` reads any size on demand)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image array {path} does not exist")
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode=None)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"image array {path} is not a readable .npy file: {exc}") from None
    _check(path, arr.dtype, arr.shape, channels, size)
    return arr


def open_images(path: str | Path, channels: int | None = None, size: int | None = None) -> NpyReader:
    """The same checks as :func:`load_images`, for an array read a batch or chunk at a time."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image array {path} does not exist")
    reader = NpyReader(path)
    try:
        _check(path, reader.dtype, reader.shape, channels, size)
    except UserError:
        reader.close()
        raise
    return reader


def save_images(path: str | Path, images: np.ndarray) -> Path:
    assert images.dtype == np.uint8 and images.ndim == 4, (images.dtype, images.shape)
    return files.write_npy(path, images)


def split_indices(n: int, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split into (train, holdout) index arrays; both non-empty."""
    if n < 2:
        raise UserError(f"dataset has {n} image(s); at least 2 are needed for a train/holdout split")
    perm = np.random.default_rng(seed).permutation(n)
    k = min(max(1, round(n * holdout_fraction)), n - 1)
    return np.sort(perm[k:]), np.sort(perm[:k])


@dataclass
class ChannelSums:
    """Per-channel sums of uint8 pixels and of their squares, as exact integers: the mean and
    std do not depend on how the images were chunked."""

    channels: int
    total: list[int] = field(default_factory=list)
    squares: list[int] = field(default_factory=list)
    pixels: int = 0
    """Pixels per channel summed so far."""

    def __post_init__(self) -> None:
        self.total = self.total or [0] * self.channels
        self.squares = self.squares or [0] * self.channels

    def add(self, images: np.ndarray) -> ChannelSums:
        for c in range(self.channels):
            x = images[:, c]
            self.total[c] += int(x.sum(dtype=np.uint64))
            self.squares[c] += int(np.square(x, dtype=np.uint16).sum(dtype=np.uint64))  # 255^2 fits
        self.pixels += images[:, 0].size
        return self

    def stats(self) -> tuple[list[float], list[float]]:
        """(mean, std) per channel on the [0, 1] scale (population std), correctly rounded."""
        n = self.pixels
        if n == 0:
            raise ValueError("no pixels summed")
        mean = [float(Fraction(s, n * 255)) for s in self.total]
        std = [math.sqrt(Fraction(n * q - s * s, n * n * 255 * 255)) for s, q in zip(self.total, self.squares, strict=True)]
        return mean, std
