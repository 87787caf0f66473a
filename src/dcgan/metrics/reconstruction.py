"""Reconstruction of real images through the generator, and MSE / PSNR / SSIM (scikit-image).

Without an encoder, x is inverted by latent optimisation: Adam on z to minimise
||G(z) - x||², from ``restarts`` seeded random starts per image, keeping the best.
"""

from __future__ import annotations

import numpy as np
import torch

from dcgan.core.pixels import to_01, to_uint8, to_unit
from dcgan.core.progress import progress
from dcgan.core.seeding import generator_for
from dcgan.networks.gan import pixels_of, prior_of, sample_prior, to_network


@torch.inference_mode()
def encode_decode(e: torch.nn.Module, g: torch.nn.Module, images: np.ndarray, device: torch.device,
                  batch_size: int = 256) -> np.ndarray:
    """uint8 images -> G(E(x)) as uint8, through the encoder trained with G."""
    out = []
    for start in range(0, len(images), batch_size):
        x = to_unit(images[start:start + batch_size]).to(device)
        if getattr(g, "cfg", None) is not None:  # E reads what D reads: the network space
            x = to_network(x, g.cfg)
        out.append(to_uint8(pixels_of(g, g(e(x)))).cpu())
    return torch.cat(out).numpy()


def invert_by_optimisation(g: torch.nn.Module, images: np.ndarray, latent_dim: int, steps: int,
                           restarts: int, lr: float, seed: int, device: torch.device) -> np.ndarray:
    """uint8 images (N, C, H, W) -> their best reconstructions G(z*) as uint8 (N, C, H, W)."""
    g.eval().requires_grad_(False)
    x = to_unit(images).to(device)
    n = len(x)
    target = x.repeat(restarts, 1, 1, 1)  # (restarts * N, C, H, W): restart r of image i at r*N+i
    prior = prior_of(g)
    z = sample_prior(restarts * n, latent_dim, prior, generator_for(seed, "invert")).to(device)
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in progress(range(steps), desc="invert G", unit="step", leave=False, disable=steps < 50):
        loss = ((pixels_of(g, g(z)) - target) ** 2).flatten(1).mean(1)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # sum: each z gets its own image's gradient
        opt.step()
        if prior == "uniform":
            with torch.no_grad():
                z.clamp_(-1, 1)  # stay where G was trained
    with torch.no_grad():
        recon = pixels_of(g, g(z))
        err = ((recon - target) ** 2).flatten(1).mean(1).view(restarts, n)
        best = err.argmin(0)  # (N,) restart with the lowest error per image
        chosen = recon.view(restarts, n, *recon.shape[1:])[best, torch.arange(n, device=device)]
    g.requires_grad_(True)
    return to_uint8(chosen).cpu().numpy()


def reconstruction_metrics(real: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    """Mean per-image MSE (on [0, 1]), PSNR (dB) and SSIM between uint8 image sets."""
    # imported where used: skimage.metrics loads scipy.stats, 1.3 s in every evaluate process
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

    if real.shape != recon.shape:
        raise ValueError(f"shape mismatch {real.shape} vs {recon.shape}")
    a, b = to_01(real), to_01(recon)
    size = real.shape[-1]
    win = min(7, size if size % 2 else size - 1)
    mse, psnr, ssim = [], [], []
    for x, y in zip(a, b, strict=True):
        x, y = np.moveaxis(x, 0, -1), np.moveaxis(y, 0, -1)  # C,H,W -> H,W,C
        m = mean_squared_error(x, y)
        mse.append(m)
        # identical images have infinite PSNR; cap at 100 dB so means stay finite
        psnr.append(100.0 if m == 0 else peak_signal_noise_ratio(x, y, data_range=1.0))
        ssim.append(structural_similarity(x, y, data_range=1.0, channel_axis=-1, win_size=win))
    return {"recon_mse": float(np.mean(mse)), "recon_psnr": float(np.mean(psnr)),
            "recon_ssim": float(np.mean(ssim))}
