"""Offline augmentation: K randomly transformed copies of every image, appended to the originals.

Each copy applies, in one bilinear resample, a random resized crop (square, keeping between
``crop_scale_min`` and all of the area), a rotation of up to ``rotate_degrees``, a shift of up
to ``translate`` of the image size, and (if enabled) a horizontal flip. Randomness comes from a
seeded torch.Generator, so the output is a pure function of the input and params.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dcgan.core.seeding import generator_for


@dataclass(frozen=True)
class Augmentation:
    """The random transform of each copy (params.yaml's augment section is one)."""

    copies: int
    hflip: bool
    crop_scale_min: float
    rotate_degrees: float
    translate: float


def random_affine(n: int, p: Augmentation, gen: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) affine matrices mapping output coords to input coords (normalised [-1, 1])."""
    u = torch.rand(n, 5, generator=gen, dtype=torch.float64)
    area = p.crop_scale_min + (1.0 - p.crop_scale_min) * u[:, 0]
    s = area.sqrt()  # side of the crop as a fraction of the image; < 1 zooms in
    theta = math.radians(p.rotate_degrees) * (2 * u[:, 1] - 1)
    # crop centre anywhere that keeps the crop inside the image, plus the free translation
    cx = (1 - s) * (2 * u[:, 2] - 1) + 2 * p.translate * (2 * u[:, 3] - 1)
    cy = (1 - s) * (2 * u[:, 4] - 1) + 2 * p.translate * (2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1)
    flip = torch.ones(n, dtype=torch.float64)
    if p.hflip:
        flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()
    cos, sin = theta.cos() * s, theta.sin() * s
    mat = torch.stack([
        torch.stack([cos * flip, -sin, cx], 1),
        torch.stack([sin * flip, cos, cy], 1),
    ], 1)
    return mat.float()


def augmented_chunks(images, p: Augmentation, seed: int, batch: int = 2048) -> Iterator[np.ndarray]:
    """The augmented set (originals, then each copy) chunk by chunk, in order. ``images``: a
    uint8 (N, C, H, W) array or :class:`~dcgan.data.store.NpyReader` (read ``batch`` rows at a
    time). The random draws are taken copy by copy, batch by batch: one stream whatever the size."""
    n = len(images)
    for start in range(0, n, batch):
        yield np.asarray(images[start:start + batch])
    if p.copies == 0:
        return
    gen = generator_for(seed, "augment")
    pad = "zeros" if images.shape[1] == 1 else "reflection"  # grey digits sit on black
    for _ in range(p.copies):
        for start in range(0, n, batch):
            x = torch.from_numpy(np.asarray(images[start:start + batch])).float()
            mat = random_affine(len(x), p, gen)
            grid = F.affine_grid(mat, list(x.shape), align_corners=False)
            y = F.grid_sample(x, grid, mode="bilinear", padding_mode=pad, align_corners=False)
            yield y.round().clamp(0, 255).to(torch.uint8).numpy()


def augment(images: np.ndarray, p: Augmentation, seed: int, batch: int = 2048) -> np.ndarray:
    """uint8 (N, C, H, W) -> uint8 (N * (1 + copies), C, H, W): originals first, then each copy."""
    if p.copies == 0:
        return images
    return np.concatenate(list(augmented_chunks(images, p, seed, batch)))
