"""Drawing images from a generator, and image grids."""

from __future__ import annotations

import io as _io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid
from tqdm import tqdm

from dcgan import io
from dcgan.data.arrays import to_uint8
from dcgan.runtime import generator_for


@torch.inference_mode()
def generate(g: torch.nn.Module, n: int, latent_dim: int, seed: int, device: torch.device,
             batch_size: int = 256) -> np.ndarray:
    """n images from G (eval mode) as uint8 (n, C, H, W); noise from the seed, batch by batch."""
    out = []
    for i, start in enumerate(tqdm(range(0, n, batch_size), desc="sample", unit="batch",
                                   leave=False, disable=n < 20 * batch_size)):
        b = min(batch_size, n - start)
        z = torch.randn(b, latent_dim, generator=generator_for(seed, "sample", i)).to(device)
        out.append(to_uint8(g(z)).cpu())
    return torch.cat(out).numpy()


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
    buf = _io.BytesIO()
    im.save(buf, format="PNG")
    return io.write_bytes(path, buf.getvalue())
