"""One training step, as in the official example: :func:`d_step` (D on a real and a generated
batch), then :func:`g_step` (G through the updated D). The penalties (R1, WGAN-GP) and the
encoder's losses are separate functions those steps call.

With ``train.discriminators: K > 1`` (GMAN, Durugkar et al. 2017) each discriminator plays its
own game against G: its own loss, optimizer, penalties and DiffAugment draws; G's loss combines
the K losses (:func:`aggregate`). Discriminator 0 draws exactly what a single-D run draws."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from dcgan import losses
from dcgan.models import sample_prior, to_network
from dcgan.seeding import generator_for
from dcgan.training.diffaug import diff_augment
from dcgan.training.state import Run, Setup, Wrapped


@dataclass
class Batch:
    """One step's inputs: this rank's real images in the network space ([-1, 1], or standardised)
    and noise, with the step's DiffAugment (one seeded generator per discriminator, each drawn
    from in a fixed order)."""

    step: int
    size: int
    """The global batch size (this rank holds size / world_size of it)."""
    real: torch.Tensor
    z: torch.Tensor
    aug_gens: list[torch.Generator] | None
    policies: tuple[str, ...]

    def augment(self, x: torch.Tensor, k: int = 0) -> torch.Tensor:
        """DiffAugment with discriminator k's draws, or the identity when train.diffaug is empty."""
        return diff_augment(x, self.policies, self.aug_gens[k]) if self.policies else x


def _per_d(seed: int, purpose: str, k: int, *parts: object) -> torch.Generator:
    """Discriminator k's generator for ``purpose``: D0's is the single-D run's."""
    return generator_for(seed, purpose, *parts) if k == 0 else generator_for(seed, purpose, *parts, "d", k)


def next_batch(s: Setup, run: Run, data, order: torch.Tensor, bs: int) -> Batch:
    """This rank's slice of the step's real images (``data``: a :mod:`dcgan.training.data`
    source) and noise."""
    if isinstance(data, torch.Tensor):  # Tensor.take would index the flattened tensor: refuse it
        raise TypeError("next_batch takes a batch source from dcgan.training.data, not a tensor")
    idx = s.dist.shard(order[run.offset:run.offset + bs])  # this rank's slice of the global batch
    real = data.take(idx).to(s.device, non_blocking=True)
    real = real.float().div_(127.5).sub_(1.0)  # (bs, C, H, W) in [-1, 1]
    real = to_network(real, s.cfg)  # train.normalize meanstd: (x - mean) / std; range: as is
    real = real.contiguous(memory_format=s.memory_format)
    z = s.dist.shard(sample_prior(bs, s.cfg.latent_dim, s.cfg.prior,
                                  generator_for(s.seed, "z", run.step))).to(s.device)
    aug = s.p.diffaug
    rank = () if not s.dist.enabled else ("rank", s.dist.rank)
    aug_gens = ([_per_d(s.seed, "diffaug", k, run.step, *rank) for k in range(len(run.ds))]
                if aug else None)
    return Batch(run.step, bs, real, z, aug_gens, aug)


def d_penalties(s: Setup, d: nn.Module, b: Batch, fake: torch.Tensor, k: int = 0) -> Iterator[torch.Tensor]:
    """R1 on reals and WGAN-GP on interpolates for discriminator k, every ``reg_every`` steps and
    scaled by it (lazy regularisation); computed on the plain D, since compiled graphs have no
    double backward."""
    p = s.p
    if b.step % p.reg_every:
        return
    if p.r1_gamma > 0:
        yield p.r1_gamma / 2 * p.reg_every * losses.r1_penalty(d, b.augment(b.real, k))
    if p.gp_lambda > 0:
        alpha = s.dist.shard(torch.rand(b.size, 1, 1, 1, generator=_per_d(s.seed, "gp", k, b.step)))
        yield p.gp_lambda * p.reg_every * losses.gradient_penalty(
            d, b.augment(b.real, k), b.augment(fake.float(), k), alpha.to(s.device))


def d_step(s: Setup, run: Run, nets: Wrapped, b: Batch) -> tuple[torch.Tensor, ...]:
    """Update each D: real images should score real, G's images fake. Returns (loss_d (the
    discriminators' mean), their logits on the reals, on the fakes (concatenated), the fakes)."""
    with s.autocast():
        fake = nets.g(b.z)
    total, outs_real, outs_fake = None, [], []
    for k, (d, plain) in enumerate(zip(nets.ds, run.ds, strict=True)):
        with s.autocast():  # logits cast back to fp32: the losses never run in reduced precision
            out_real = d(b.augment(b.real, k)).float()
            out_fake = d(b.augment(fake.detach(), k)).float()
        loss_k = losses.d_loss(s.p.loss, out_real, out_fake)
        for penalty in d_penalties(s, plain, b, fake, k):
            loss_k = loss_k + penalty
        total = loss_k if total is None else total + loss_k  # disjoint weights: one backward
        outs_real.append(out_real)
        outs_fake.append(out_fake)
    for opt in run.opt_ds:
        opt.zero_grad(set_to_none=True)
    run.scaler.scale(total).backward()
    for opt in run.opt_ds:
        run.scaler.step(opt)
    if len(run.ds) == 1:
        return total, outs_real[0], outs_fake[0], fake
    return total / len(run.ds), torch.cat(outs_real), torch.cat(outs_fake), fake


def aggregate(kind: str, per_d: list[torch.Tensor], temperature: float,
              global_mean: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> torch.Tensor:
    """G's loss from the K discriminators' G losses: their mean; GMAN's softmax-weighted mean
    (weights softmax(temperature * loss_k), held constant in the gradient: 0 is the mean, large
    values approach the max); or the max (G answers the strictest D).

    The weights come from ``global_mean`` of the losses (under DDP: the all-reduced mean, so that
    every rank weighs by the whole batch's losses, as one process would; no host sync)."""
    if len(per_d) == 1:
        return per_d[0]
    stacked = torch.stack(per_d)
    if kind == "mean":
        return stacked.mean()
    seen = global_mean(stacked.detach())
    if kind == "softmax":
        weights = torch.softmax(temperature * seen, dim=0)
    elif kind == "max":
        weights = torch.nn.functional.one_hot(seen.argmax(), len(per_d)).to(stacked.dtype)
    else:
        raise ValueError(f"unknown d_aggregate {kind!r}")
    return (weights * stacked).sum()


def encoder_losses(s: Setup, b: Batch, recon: torch.Tensor,
                   z_cycle: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(|G(E(x)) - x|, the weighted terms added to G's loss): reconstruction (updates E and
    G) and, when on, the latent cycle |E(G(z)) - z| (updates E)."""
    p = s.p
    loss_recon = losses.reconstruction_loss(p.recon_loss, recon, b.real)
    terms = [p.recon_weight * loss_recon]
    if z_cycle is not None:
        terms.append(p.latent_cycle_weight * losses.reconstruction_loss(p.recon_loss, z_cycle, b.z))
    return loss_recon, terms


def g_step(s: Setup, run: Run, nets: Wrapped, b: Batch,
           fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Update G (and E) through the updated D: G's images should score real. Returns
    (loss_g, the reconstruction loss or None)."""
    for d in run.ds:
        d.requires_grad_(False)
    with s.autocast():
        outs_g = [d(b.augment(fake, k)).float() for k, d in enumerate(nets.ds_no_sync)]
        if run.e is not None:
            recon = nets.g(nets.e(b.real)).float()
            z_cycle = nets.e(fake.detach()).float() if s.p.latent_cycle_weight > 0 else None
    loss_g = aggregate(s.p.d_aggregate, [losses.g_loss(s.p.loss, out) for out in outs_g],
                       s.p.d_temperature, s.dist.all_mean)
    total, loss_recon = loss_g, None
    if run.e is not None:
        loss_recon, terms = encoder_losses(s, b, recon, z_cycle)
        for term in terms:
            total = total + term
        run.opt_e.zero_grad(set_to_none=True)
    run.opt_g.zero_grad(set_to_none=True)
    run.scaler.scale(total).backward()
    run.scaler.step(run.opt_g)
    if run.e is not None:
        run.scaler.step(run.opt_e)
    run.scaler.update()
    for d in run.ds:
        d.requires_grad_(True)
    if run.ema is not None:
        run.ema.update(run.g)
    return loss_g, loss_recon


@torch.no_grad()
def step_row(s: Setup, loss_d: torch.Tensor, loss_g: torch.Tensor, out_real: torch.Tensor,
             out_fake: torch.Tensor, loss_recon: torch.Tensor | None) -> torch.Tensor:
    """The logged numbers of one step, on the device: loss_d, loss_g, d_real, d_fake[, loss_recon]."""
    if s.p.loss == "bce":
        dr, df = torch.sigmoid(out_real).mean(), torch.sigmoid(out_fake).mean()
    else:  # hinge/WGAN logits are not probabilities: log the raw means
        dr, df = out_real.mean(), out_fake.mean()
    row = [loss_d.detach(), loss_g.detach(), dr, df]
    if loss_recon is not None:
        row.append(loss_recon.detach())
    return torch.stack(row)
