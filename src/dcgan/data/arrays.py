"""uint8 image arrays (N, C, H, W) on disk: save, load with checks, split, statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dcgan import files
from dcgan.errors import UserError


def load_images(path: str | Path, channels: int | None = None, size: int | None = None) -> np.ndarray:
    """Load a .npy of uint8 images (N, C, H, W), checking dtype, rank, and optionally C and H=W=size."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image array {path} does not exist")
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode=None)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"image array {path} is not a readable .npy file: {exc}") from None
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise UserError(
            f"image array {path} must be uint8 with shape (N, C, H, W), got {arr.dtype} {arr.shape}"
        )
    n, c, h, w = arr.shape
    if n == 0:
        raise UserError(f"image array {path} holds no images")
    if channels is not None and c != channels:
        raise UserError(f"image array {path} has {c} channels but {channels} were expected")
    if size is not None and (h, w) != (size, size):
        raise UserError(f"image array {path} has images of {h}x{w} but {size}x{size} were expected")
    return arr


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


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images on the [0, 1] scale (float64 accumulation)."""
    x = images.astype(np.float64) / 255.0
    return x.mean(axis=(0, 2, 3)).tolist(), x.std(axis=(0, 2, 3)).tolist()


def to_unit(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [-1, 1], the range of G's Tanh output."""
    x = torch.as_tensor(images)
    return x.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 [0, 255], rounded and clamped."""
    return x.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
