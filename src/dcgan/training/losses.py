"""Adversarial losses (on logits), gradient penalties, reconstruction losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's loss from logits on real and fake images (both (N,))."""
    if kind == "bce":  # -log sigmoid(r) - log(1 - sigmoid(f))
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wgan":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown loss {kind!r}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """G's loss from D's logits on fakes; bce is the non-saturating -log sigmoid(D(G(z)))."""
    if kind == "bce":
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wgan"):
        return -fake.mean()
    raise ValueError(f"unknown loss {kind!r}")


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
    if kind == "l1":
        return F.l1_loss(a, b)
    if kind == "l2":
        return F.mse_loss(a, b)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(a, b)
    raise ValueError(f"unknown reconstruction loss {kind!r}")
