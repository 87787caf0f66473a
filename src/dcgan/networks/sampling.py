"""Drawing images from a generator: plain sampling, latent walks and rejection sampling (DRS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dcgan.core.errors import SettingError
from dcgan.core.pixels import to_uint8
from dcgan.core.progress import progress
from dcgan.core.seeding import generator_for
from dcgan.networks.gan import pixels_of, prior_of, sample_prior
from dcgan.networks.model_dir import load_discriminator, load_generator, pick_generator, read_card


@torch.inference_mode()
def generate(g: torch.nn.Module, n: int, latent_dim: int, seed: int, device: torch.device,
             batch_size: int = 256) -> np.ndarray:
    """n images from G (eval mode) as uint8 (n, C, H, W); noise from G's prior and the seed."""
    out = []
    prior = prior_of(g)
    for i, start in enumerate(progress(range(0, n, batch_size), desc="sample", unit="batch",
                                   leave=False, disable=n < 20 * batch_size)):
        b = min(batch_size, n - start)
        z = sample_prior(b, latent_dim, prior, generator_for(seed, "sample", i)).to(device)
        out.append(to_uint8(pixels_of(g, g(z))).cpu())
    return torch.cat(out).numpy()


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
    """uint8 (rows * steps, C, H, W): each row walks the latent space between two random z:
    along a great circle for the normal prior, a straight line for the uniform one (which
    keeps it inside the cube)."""
    gen = generator_for(seed, "interpolate")
    prior = prior_of(g)
    z0, z1 = sample_prior(rows, latent_dim, prior, gen), sample_prior(rows, latent_dim, prior, gen)
    t = torch.linspace(0, 1, steps)
    if prior == "normal":
        z = slerp(z0, z1, t)
    else:
        z = z0[:, None] + t[None, :, None] * (z1 - z0)[:, None]  # (rows, steps, D)
    z = z.reshape(rows * steps, latent_dim)
    return to_uint8(pixels_of(g, g(z.to(device)))).cpu().numpy()


@dataclass
class DRSResult:
    images: np.ndarray
    acceptance_rate: float
    max_logit: float
    proposed: int


def drs_scores(logits: torch.Tensor, max_logit: float, eps: float = 1e-6) -> torch.Tensor:
    """F = D - D_M - log(1 - exp(D - D_M - eps)) (Azadi et al. 2019), float64.

    sigmoid(F) = exp(D - D_M - eps): with an optimal D, exp(D) = p_data / p_g, so accepting
    with that probability is exact rejection sampling from p_data.
    """
    delta = logits.double() - max_logit
    return delta - torch.log1p(-torch.exp(delta - eps))


@torch.inference_mode()
def discriminator_rejection_sampling(
        g: torch.nn.Module, d: torch.nn.Module, n: int, latent_dim: int, seed: int,
        device: torch.device, batch_size: int = 256, burnin: int = 1000,
        percentile: float | None = 80.0, max_proposals: int | None = None) -> DRSResult:
    """n images accepted by DRS. The max logit D_M is estimated on ``burnin`` samples and
    raised whenever a larger logit appears; gamma is the ``percentile`` of F in each batch
    (None: gamma = 0); a sample is kept with probability sigmoid(F - gamma)."""
    prior = prior_of(g)
    max_proposals = max_proposals or 100 * n + burnin

    def propose(i: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = sample_prior(b, latent_dim, prior, generator_for(seed, "drs_z", i)).to(device)
        x = g(z)
        return x, d(x).float().cpu()

    max_logit = -float("inf")
    for i, start in enumerate(range(0, burnin, batch_size)):
        _, logit = propose(-1 - i, min(batch_size, burnin - start))
        max_logit = max(max_logit, float(logit.max()))
    kept, n_kept, proposed, accepted, i = [], 0, 0, 0, 0
    bar = progress(total=n, desc="DRS", unit="img", leave=False, disable=n < 20 * batch_size)
    while n_kept < n:
        if proposed >= max_proposals:
            raise SettingError("drs_percentile", f"is {percentile}: DRS accepted only {n_kept} of {proposed} "
                                                 "proposals; lower it")
        x, logit = propose(i, batch_size)
        max_logit = max(max_logit, float(logit.max()))
        f = drs_scores(logit, max_logit)
        gamma = float(torch.quantile(f, percentile / 100.0)) if percentile is not None else 0.0
        prob = torch.sigmoid(f - gamma)
        u = torch.rand(len(prob), generator=generator_for(seed, "drs_u", i), dtype=torch.float64)
        accept = (u < prob).to(x.device)
        take = x[accept][: n - n_kept]
        kept.append(to_uint8(pixels_of(g, take)).cpu())
        n_kept += len(take)
        proposed += len(prob)
        accepted += int(accept.sum())
        bar.update(len(take))
        i += 1
    bar.close()
    images = torch.cat(kept).numpy()
    return DRSResult(images, accepted / proposed, max_logit, proposed)


@dataclass(frozen=True)
class Drawn:
    """Images drawn from a model folder (:func:`sample_model`) and what samples.json records."""

    images: np.ndarray
    record: dict
    """generator (best or last), drs, and the DRS statistics or, without DRS, the latents."""
    drs: DRSResult | None
    g: torch.nn.Module
    """The generator that drew them (eval mode)."""

    @property
    def generator(self) -> str:
        return self.record["generator"]


def sample_model(folder: str | Path, requested: str, n: int, seed: int, device: torch.device,
                 batch_size: int = 256, drs: bool = False, burnin: int = 1000,
                 percentile: float | None = 80.0) -> Drawn:
    """n images from a trained model folder: the generator that ``requested`` (auto, best or
    last: :func:`~dcgan.networks.model_dir.pick_generator`) names, plainly or by DRS with the
    folder's discriminator(s). The sample stage and ``dcgan sample`` both draw through here."""
    which = pick_generator(requested, read_card(folder).ema_decay)
    g = load_generator(folder, device, which)
    record: dict = {"generator": which, "drs": drs}
    if drs:
        res = discriminator_rejection_sampling(g, load_discriminator(folder, device), n, g.cfg.latent_dim, seed,
                                               device, batch_size, burnin, percentile)
        record.update(drs_acceptance_rate=res.acceptance_rate, drs_proposed=res.proposed,
                      drs_max_logit=res.max_logit, drs_percentile=percentile)
        return Drawn(res.images, record, res, g)
    # the latents, as generate draws them: two generators sampled with the same record saw the
    # same z row for row (the promotion gate then resamples both sets jointly)
    record["latents"] = {"seed": seed, "n": n, "batch_size": batch_size, "latent_dim": g.cfg.latent_dim,
                         "prior": g.cfg.prior}
    return Drawn(generate(g, n, g.cfg.latent_dim, seed, device, batch_size), record, None, g)
