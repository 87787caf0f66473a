"""One training step, as in the official example: :func:`d_step` (D on a real and a generated
batch), then :func:`g_step` (G through the updated D). The penalties (R1, WGAN-GP) and the
encoder's losses are separate functions those steps call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from dcgan import losses
from dcgan.models import sample_prior
from dcgan.seeding import generator_for
from dcgan.training.diffaug import diff_augment
from dcgan.training.state import Run, Setup, Wrapped


@dataclass
class Batch:
    """One step's inputs: this rank's real images in [-1, 1] and noise, with the step's
    DiffAugment (one seeded generator, drawn from in a fixed order)."""

    step: int
    size: int
    """The global batch size (this rank holds size / world_size of it)."""
    real: torch.Tensor
    z: torch.Tensor
    aug_gen: torch.Generator | None
    policies: tuple[str, ...]

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment, or the identity when train.diffaug is empty."""
        return diff_augment(x, self.policies, self.aug_gen) if self.policies else x


def next_batch(s: Setup, run: Run, data: torch.Tensor, order: torch.Tensor, bs: int) -> Batch:
    idx = s.dist.shard(order[run.offset:run.offset + bs])  # this rank's slice of the global batch
    real = data[idx.to(data.device)].to(s.device, non_blocking=True)
    real = real.float().div_(127.5).sub_(1.0)  # (bs, C, H, W) in [-1, 1]
    real = real.contiguous(memory_format=s.memory_format)
    z = s.dist.shard(sample_prior(bs, s.cfg.latent_dim, s.cfg.prior,
                                  generator_for(s.seed, "z", run.step))).to(s.device)
    aug = s.p.diffaug
    aug_gen = (None if not aug else generator_for(s.seed, "diffaug", run.step) if not s.dist.enabled
               else generator_for(s.seed, "diffaug", run.step, "rank", s.dist.rank))
    return Batch(run.step, bs, real, z, aug_gen, aug)


def d_penalties(s: Setup, d: nn.Module, b: Batch, fake: torch.Tensor) -> Iterator[torch.Tensor]:
    """R1 on reals and WGAN-GP on interpolates, every ``reg_every`` steps and scaled by it
    (lazy regularisation); computed on the plain D, since compiled graphs have no double backward."""
    p = s.p
    if b.step % p.reg_every:
        return
    if p.r1_gamma > 0:
        yield p.r1_gamma / 2 * p.reg_every * losses.r1_penalty(d, b.augment(b.real))
    if p.gp_lambda > 0:
        alpha = s.dist.shard(torch.rand(b.size, 1, 1, 1, generator=generator_for(s.seed, "gp", b.step)))
        yield p.gp_lambda * p.reg_every * losses.gradient_penalty(
            d, b.augment(b.real), b.augment(fake.float()), alpha.to(s.device))


def d_step(s: Setup, run: Run, nets: Wrapped, b: Batch) -> tuple[torch.Tensor, ...]:
    """Update D: real images should score real, G's images fake. Returns
    (loss_d, D's logits on the reals, on the fakes, the fakes)."""
    with s.autocast():  # logits cast back to fp32: the losses never run in reduced precision
        fake = nets.g(b.z)
        out_real = nets.d(b.augment(b.real)).float()
        out_fake = nets.d(b.augment(fake.detach())).float()
    loss_d = losses.d_loss(s.p.loss, out_real, out_fake)
    for penalty in d_penalties(s, run.d, b, fake):
        loss_d = loss_d + penalty
    run.opt_d.zero_grad(set_to_none=True)
    run.scaler.scale(loss_d).backward()
    run.scaler.step(run.opt_d)
    return loss_d, out_real, out_fake, fake


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
    run.d.requires_grad_(False)
    with s.autocast():
        out_g = nets.d_no_sync(b.augment(fake)).float()
        if run.e is not None:
            recon = nets.g(nets.e(b.real)).float()
            z_cycle = nets.e(fake.detach()).float() if s.p.latent_cycle_weight > 0 else None
    loss_g = losses.g_loss(s.p.loss, out_g)
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
    run.d.requires_grad_(True)
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
