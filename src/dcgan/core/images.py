"""Image grids as PIL images and PNG files (for previews, sample sheets and dvclive)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from dcgan.core import files
from dcgan.core.pixels import to_uint8


def grid_image(images: np.ndarray | torch.Tensor, nrow: int | None = None, pad: int = 2) -> Image.Image:
    """uint8 (N, C, H, W) -> one PIL image laid out nrow per row (square by default)."""
    x = torch.as_tensor(np.asarray(images))
    if x.dtype != torch.uint8:  # float in [-1, 1]
        x = to_uint8(x)
    nrow = nrow or max(1, math.ceil(math.sqrt(len(x))))
    grid = make_grid(x, nrow=nrow, padding=pad, pad_value=255)  # (C', H', W') uint8
    arr = grid.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if x.shape[1] == 1 else arr)


def save_grid(images: np.ndarray | torch.Tensor, path: str | Path, nrow: int | None = None,
              upscale: int = 1) -> Path:
    """Write a PNG grid atomically; ``upscale`` enlarges small images (nearest) for viewing."""
    im = grid_image(images, nrow)
    if upscale > 1:
        im = im.resize((im.width * upscale, im.height * upscale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return files.write_bytes(path, buf.getvalue())
