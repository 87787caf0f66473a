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


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of z0 and z1 (N, D) at fractions t (T,) -> (N, T, D).

    Under a Gaussian prior, straight lines pass through low-norm regions G never saw in
    training; great circles keep the norm typical.
    """
    a, b = z0 / z0.norm(dim=1, keepdim=True), z1 / z1.norm(dim=1, keepdim=True)
    omega = torch.acos((a * b).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None, None]  # (N, 1, 1)
    t = t[None, :, None]
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * z0[:, None] + (torch.sin(t * omega) / so) * z1[:, None]


@torch.inference_mode()
def interpolation_grid(g: torch.nn.Module, latent_dim: int, seed: int, device: torch.device,
                       rows: int = 8, steps: int = 10) -> np.ndarray:
    """uint8 (rows * steps, C, H, W): each row walks the latent space between two random z."""
    gen = generator_for(seed, "interpolate")
    z0, z1 = torch.randn(rows, latent_dim, generator=gen), torch.randn(rows, latent_dim, generator=gen)
    z = slerp(z0, z1, torch.linspace(0, 1, steps)).reshape(rows * steps, latent_dim)
    return to_uint8(g(z.to(device))).cpu().numpy()
