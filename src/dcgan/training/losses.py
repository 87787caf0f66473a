"""Adversarial losses (on logits), gradient penalties, reconstruction losses.

The losses' names are :mod:`dcgan.training.names`' (the data-only lists that params validation
reads); :data:`ADVERSARIAL` and :data:`RECONSTRUCTION` bind each name to its code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dcgan.training import names


@dataclass(frozen=True)
class Adversarial:
    """One adversarial loss on D's logits."""

    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    """D's loss from its logits on real and fake images (both (N,))."""
    g: Callable[[torch.Tensor], torch.Tensor]
    """G's loss from D's logits on fakes."""
    probabilities: bool
    """Whether sigmoid(logit) is D's probability that an image is real: then the log shows
    d_real/d_fake as probabilities, else as the raw logits' means."""


ADVERSARIAL: dict[str, Adversarial] = {
    # non-saturating BCE (DCGAN): D's -log sigmoid(r) - log(1 - sigmoid(f)), G's -log sigmoid(D(G(z)))
    "bce": Adversarial(lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
                       lambda fake: F.softplus(-fake).mean(), probabilities=True),
    "hinge": Adversarial(lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
                         lambda fake: -fake.mean(), probabilities=False),
    "wgan": Adversarial(lambda real, fake: fake.mean() - real.mean(), lambda fake: -fake.mean(),
                        probabilities=False),
}
"""``train.loss``: name -> the loss."""

RECONSTRUCTION: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": F.l1_loss, "l2": F.mse_loss, "smooth_l1": F.smooth_l1_loss,
}
"""``train.recon_loss``: name -> the loss between two tensors (mean over elements)."""
names.check_bound(names.ADVERSARIAL_LOSSES, ADVERSARIAL, "dcgan.training.losses.ADVERSARIAL")
names.check_bound(names.RECON_LOSSES, RECONSTRUCTION, "dcgan.training.losses.RECONSTRUCTION")


def adversarial(kind: str) -> Adversarial:
    if kind not in ADVERSARIAL:
        raise ValueError(f"unknown loss {kind!r} (known: {', '.join(ADVERSARIAL)})")
    return ADVERSARIAL[kind]


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's loss from logits on real and fake images (both (N,))."""
    return adversarial(kind).d(real, fake)


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """G's loss from D's logits on fakes; bce is the non-saturating -log sigmoid(D(G(z)))."""
    return adversarial(kind).g(fake)


def _grad_norm2(d: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """|grad_x D(x)|^2 per sample, (N,), kept in the graph (create_graph) for D's update."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1)


def r1_penalty(d: torch.nn.Module, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E |grad D(x)|^2 on reals; multiply by gamma / 2."""
    return _grad_norm2(d, real).mean()


def gradient_penalty(d: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E (|grad D(x_hat)| - 1)^2 on x_hat = a x + (1-a) G(z).

    ``alpha`` (N, 1, 1, 1) in [0, 1] comes from the caller's seeded generator.
    """
    x_hat = alpha * real.detach() + (1 - alpha) * fake.detach()
    return (_grad_norm2(d, x_hat).add(1e-12).sqrt() - 1).pow(2).mean()


def reconstruction_loss(kind: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if kind not in RECONSTRUCTION:
        raise ValueError(f"unknown reconstruction loss {kind!r} (known: {', '.join(RECONSTRUCTION)})")
    return RECONSTRUCTION[kind](a, b)
