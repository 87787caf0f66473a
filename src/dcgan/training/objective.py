"""The GAN objective as one object: :class:`GANObjective`, built once from an
:class:`ObjectiveSpec`, gives the discriminators' loss (:meth:`~GANObjective.d_loss`) and the
generator's (:meth:`~GANObjective.g_loss`) for a :class:`Batch`. The training loop owns the
optimizer steps (:func:`dcgan.training.loop.train_step`).

Its parts: the adversarial loss (BCE, hinge, WGAN; :mod:`dcgan.training.losses`), the penalties
on D (:class:`Penalties`: R1, WGAN-GP, lazily every ``reg_every`` steps), how G's loss combines
K discriminators (:func:`aggregate`, GMAN) and the encoder's losses (:class:`EncoderLosses`).
What each discriminator sees of an image is :meth:`GANObjective.view`: ADA (an
:class:`~dcgan.training.ada.AdaPipe`, whose p the loop tunes), then DiffAugment.
With K > 1 each discriminator plays its own game against G: its own loss, penalties and
DiffAugment draws; discriminator 0 draws exactly what a single-D run draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from dcgan.training import losses
from dcgan.training.ada import AdaPipe
from dcgan.training.batches import Batch
from dcgan.training.distributed import DistEnv


@dataclass(frozen=True)
class ObjectiveSpec:
    """What the objective is made of (params.yaml's train section holds each key)."""

    loss: str
    """A name in :data:`dcgan.training.losses.ADVERSARIAL` (bce, hinge, wgan)."""
    r1_gamma: float
    gp_lambda: float
    reg_every: int
    diffaug: tuple[str, ...]
    recon_loss: str
    recon_weight: float
    latent_cycle_weight: float
    d_aggregate: str
    d_temperature: float
    ada: str = "none"
    """ADA's pipeline (:data:`dcgan.training.ada.PIPELINES`) or none."""
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 500.0

    def regularises(self, step: int) -> bool:
        """Whether ``step`` applies the penalties (R1, WGAN-GP): lazily, every ``reg_every`` steps,
        and never when both are off. The step's work differs by it (a captured step's kind)."""
        return (self.r1_gamma > 0 or self.gp_lambda > 0) and step % self.reg_every == 0


@dataclass
class DTerms:
    loss: torch.Tensor
    """What the discriminators' update minimises: the sum of their losses (disjoint weights)."""
    loss_d: torch.Tensor
    """The logged loss: the discriminators' mean."""
    out_real: torch.Tensor
    out_fake: torch.Tensor
    """Their logits on the reals and on the fakes (concatenated over the K)."""


@dataclass
class GTerms:
    loss: torch.Tensor
    """What G's (and E's) update minimises."""
    loss_g: torch.Tensor
    """The adversarial part alone (logged)."""
    loss_recon: torch.Tensor | None
    """|G(E(x)) - x| when an encoder is trained."""


class Penalties:
    """R1 on reals and WGAN-GP on interpolates, every ``reg_every`` steps and scaled by it (lazy
    regularisation); computed on the plain D, since compiled graphs have no double backward."""

    def __init__(self, spec: ObjectiveSpec, dist: DistEnv):
        self.spec, self.dist = spec, dist

    def __call__(self, d: nn.Module, b: Batch, fake: torch.Tensor, k: int,
                 view: Callable[[Batch, torch.Tensor, int], torch.Tensor]) -> Iterator[torch.Tensor]:
        """``view(b, x, k)``: x as discriminator k sees it (augmented)."""
        p = self.spec
        if not p.regularises(b.step):
            return
        if p.r1_gamma > 0:
            yield p.r1_gamma / 2 * p.reg_every * losses.r1_penalty(d, view(b, b.real, k))
        if p.gp_lambda > 0:
            alpha = self.dist.shard(b.draws("gp", k).rand(b.size, 1, 1, 1))  # the global batch's, this rank's part
            yield p.gp_lambda * p.reg_every * losses.gradient_penalty(
                d, view(b, b.real, k), view(b, fake.float(), k), alpha)


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
        # one-hot by comparison: F.one_hot checks its indices on the host (a sync)
        weights = (torch.arange(len(per_d), device=seen.device) == seen.argmax()).to(stacked.dtype)
    else:
        raise ValueError(f"unknown d_aggregate {kind!r}")
    return (weights * stacked).sum()


class EncoderLosses:
    """The encoder's terms in G's loss: reconstruction ``recon_weight * |G(E(x)) - x|`` (updates E
    and G) and, when on, the latent cycle ``latent_cycle_weight * |E(G(z)) - z|`` (updates E)."""

    def __init__(self, spec: ObjectiveSpec):
        self.spec = spec

    @property
    def cycle(self) -> bool:
        return self.spec.latent_cycle_weight > 0

    def __call__(self, b: Batch, recon: torch.Tensor,
                 z_cycle: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(|G(E(x)) - x|, the weighted terms to add to G's loss)."""
        p = self.spec
        loss_recon = losses.reconstruction_loss(p.recon_loss, recon, b.real)
        terms = [p.recon_weight * loss_recon]
        if z_cycle is not None:
            terms.append(p.latent_cycle_weight * losses.reconstruction_loss(p.recon_loss, z_cycle, b.z))
        return loss_recon, terms


class GANObjective:
    """The losses of one training step for G, the K discriminators and E (when trained).

    ``g``, ``ds`` and ``e`` are what the step calls (under DDP and/or torch.compile);
    ``plain_ds`` the discriminators themselves (the penalties' double backward);
    ``ds_no_sync`` the discriminators as G's loss calls them (no DDP gradient sync there)."""

    def __init__(self, spec: ObjectiveSpec, *, g: nn.Module, ds: list[nn.Module], plain_ds: list[nn.Module],
                 ds_no_sync: list[nn.Module], e: nn.Module | None,
                 autocast: Callable[[], AbstractContextManager], dist: DistEnv, ada: AdaPipe | None = None):
        self.spec, self.g, self.ds, self.plain_ds, self.ds_no_sync, self.e = spec, g, ds, plain_ds, ds_no_sync, e
        self.autocast, self.dist, self.ada = autocast, dist, ada
        self.penalties = Penalties(spec, dist)
        self.encoder = EncoderLosses(spec) if e is not None else None

    def view(self, b: Batch, x: torch.Tensor, k: int) -> torch.Tensor:
        """``x`` as discriminator k sees it: through ADA (its draws ``("ada", k)``), then DiffAugment;
        the identity when neither is on."""
        if self.ada is not None:
            x = self.ada(x, b.draws("ada", k))
        return b.augment(x, k)

    def generate(self, b: Batch) -> torch.Tensor:
        """G(z): the fakes both updates of the step see (as in the official example)."""
        with self.autocast():
            return self.g(b.z)

    def d_loss(self, b: Batch, fake: torch.Tensor) -> DTerms:
        """Real images should score real, G's images fake, for each discriminator (+ its penalties)."""
        total, outs_real, outs_fake = None, [], []
        for k, (d, plain) in enumerate(zip(self.ds, self.plain_ds, strict=True)):
            with self.autocast():  # logits cast back to fp32: the losses never run in reduced precision
                out_real = d(self.view(b, b.real, k)).float()
                out_fake = d(self.view(b, fake.detach(), k)).float()
            if self.ada is not None:
                self.ada.observe(out_real)  # the overfitting heuristic's signs, summed on the device
            loss_k = losses.d_loss(self.spec.loss, out_real, out_fake)
            for penalty in self.penalties(plain, b, fake, k, self.view):
                loss_k = loss_k + penalty
            total = loss_k if total is None else total + loss_k
            outs_real.append(out_real)
            outs_fake.append(out_fake)
        if len(self.ds) == 1:
            return DTerms(total, total, outs_real[0], outs_fake[0])
        return DTerms(total, total / len(self.ds), torch.cat(outs_real), torch.cat(outs_fake))

    def g_loss(self, b: Batch, fake: torch.Tensor) -> GTerms:
        """G's images should score real through the (updated) discriminators, combined over the K;
        plus the encoder's terms. The discriminators' weights must be frozen by the caller."""
        with self.autocast():
            outs = [d(self.view(b, fake, k)).float() for k, d in enumerate(self.ds_no_sync)]
            if self.encoder is not None:
                recon = self.g(self.e(b.real)).float()
                z_cycle = self.e(fake.detach()).float() if self.encoder.cycle else None
        p = self.spec
        loss_g = aggregate(p.d_aggregate, [losses.g_loss(p.loss, out) for out in outs],
                           p.d_temperature, self.dist.all_mean)
        if self.encoder is None:
            return GTerms(loss_g, loss_g, None)
        total = loss_g
        loss_recon, terms = self.encoder(b, recon, z_cycle)
        for term in terms:
            total = total + term
        return GTerms(total, loss_g, loss_recon)

    @torch.no_grad()
    def logged(self, d: DTerms, g: GTerms) -> torch.Tensor:
        """The step's logged numbers, on the device: loss_d, loss_g, d_real, d_fake[, loss_recon]."""
        if losses.adversarial(self.spec.loss).probabilities:
            dr, df = torch.sigmoid(d.out_real).mean(), torch.sigmoid(d.out_fake).mean()
        else:  # logits that are not probabilities (hinge, WGAN): log the raw means
            dr, df = d.out_real.mean(), d.out_fake.mean()
        row = [d.loss_d.detach(), g.loss_g.detach(), dr, df]
        if g.loss_recon is not None:
            row.append(g.loss_recon.detach())
        return torch.stack(row)

    def logged_names(self) -> list[str]:
        return ["loss_d", "loss_g", "d_real", "d_fake"] + (["loss_recon"] if self.encoder is not None else [])
