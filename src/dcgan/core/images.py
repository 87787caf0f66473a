"""Image grids as PIL images and PNG files (for previews, sample sheets and dvclive)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dcgan.core import files
from dcgan.core.pixels import to_uint8


def tile(x: np.ndarray, nrow: int, pad: int = 2, value: int = 255) -> np.ndarray:
    """uint8 (N, C, H, W) -> (C, H', W'): nrow images per row with ``pad`` pixels of ``value``
    around each, laid out as torchvision's ``make_grid`` lays them (a single image comes back
    without a border, as there); numpy alone, so that a stage needs no torchvision import."""
    n, c, h, w = x.shape
    if n == 1:
        return x[0]
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = np.full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), value, dtype=np.uint8)
    for k in range(n):
        r, q = divmod(k, cols)
        top, left = r * (h + pad) + pad, q * (w + pad) + pad
        grid[:, top:top + h, left:left + w] = x[k]
    return grid


def grid_image(images: np.ndarray | torch.Tensor, nrow: int | None = None, pad: int = 2) -> Image.Image:
    """uint8 (N, C, H, W) -> one PIL image laid out nrow per row (square by default)."""
    x = torch.as_tensor(np.asarray(images))
    if x.dtype != torch.uint8:  # float in [-1, 1]
        x = to_uint8(x)
    nrow = nrow or max(1, math.ceil(math.sqrt(len(x))))
    arr = tile(x.numpy(), nrow, pad).transpose(1, 2, 0)  # (H', W', C) uint8
    return Image.fromarray(np.ascontiguousarray(arr[..., 0] if x.shape[1] == 1 else arr))


def save_grid(images: np.ndarray | torch.Tensor, path: str | Path, nrow: int | None = None,
              upscale: int = 1) -> Path:
    """Write a PNG grid atomically; ``upscale`` enlarges small images (nearest) for viewing."""
    im = grid_image(images, nrow)
    if upscale > 1:
        im = im.resize((im.width * upscale, im.height * upscale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return files.write_bytes(path, buf.getvalue())
