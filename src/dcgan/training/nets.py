"""The networks being trained with their optimizers (:class:`Nets`, made by :func:`build_nets`),
and what a train step calls for them (:class:`Wrapped`: DDP and/or torch.compile around each)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dcgan.core.errors import SettingError
from dcgan.core.seeding import derive_seed, generator_for
from dcgan.networks.gan import (
    Discriminator,
    Encoder,
    Generator,
    build,
    build_encoder,
    init_weights,
    sample_prior,
)
from dcgan.training import distributed
from dcgan.training.ema import EMA
from dcgan.training.optimizers import Optimizers
from dcgan.training.settings import Setup


@dataclass
class Nets:
    """G, the K discriminators and E (when trained), their optimizers, the EMA of G and the
    loss scaler (fp16 only): every trained number a checkpoint holds."""

    g: Generator
    ds: list[Discriminator]
    e: Encoder | None
    opt: Optimizers
    ema: EMA | None
    scaler: torch.amp.GradScaler

    def named(self) -> dict[str, nn.Module | None]:
        """{"g", "d" (then "d1", "d2", ...), "e"}: the plain modules."""
        return {"g": self.g, "e": self.e, **{"d" if k == 0 else f"d{k}": d for k, d in enumerate(self.ds)}}

    def state_dict(self) -> dict[str, Any]:
        return {
            "g": self.g.state_dict(), "d": [d.state_dict() for d in self.ds], **self.opt.state_dict(),
            **({"e": self.e.state_dict()} if self.e is not None else {}),
            **({"g_ema": self.ema.state_dict()} if self.ema is not None else {}),
            **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Weights and optimizer state from a checkpoint, whichever device and step mode saved it
        (:meth:`Optimizers.load_state_dict`)."""
        if len(state["d"]) != len(self.ds):
            raise SettingError("discriminators", f"is {len(self.ds)}: the checkpoint holds {len(state['d'])} "
                                                 f"discriminators and this run has {len(self.ds)}")
        self.g.load_state_dict(state["g"])
        for d, sd in zip(self.ds, state["d"], strict=True):
            d.load_state_dict(sd)
        if self.e is not None:
            self.e.load_state_dict(state["e"])
        self.opt.load_state_dict(state)
        if self.ema is not None:
            self.ema.load_state_dict(state["g_ema"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


def extra_discriminator(s: Setup, k: int) -> Discriminator:
    """Discriminator k >= 1 of an ensemble: DCGAN init from its own derived seed (the global
    RNG is left as it was, so D0, G and E initialise as in a single-D run)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(s.seed, "discriminator", k))
        d = Discriminator(s.run.arch)
        d.apply(init_weights)
    return d


def build_nets(s: Setup) -> Nets:
    """Fresh networks (DCGAN init from the seed), optimizers, EMA and loss scaler."""
    run, fmt = s.run, s.memory_format
    torch.manual_seed(s.seed)  # init weights; everything after draws from derived generators
    g, d = build(run.arch)
    e = build_encoder(run.arch) if run.arch.encoder else None
    ds = [d, *(extra_discriminator(s, k) for k in range(1, run.discriminators))]
    g.to(s.device, memory_format=fmt)
    for d in ds:
        d.to(s.device, memory_format=fmt)
    e = e.to(s.device, memory_format=fmt) if e is not None else None
    if s.dist.enabled and run.sync_bn:  # before the optimizers: conversion may make new parameters
        g = distributed.convert_sync_bn(g, s.device)
        ds = [distributed.convert_sync_bn(d, s.device) for d in ds]
        e = distributed.convert_sync_bn(e, s.device) if e is not None else None
    # fp16 only: scale losses so small gradients survive; skips steps whose gradients overflow
    scaler = torch.amp.GradScaler(s.device.type, enabled=run.precision == "fp16")
    return Nets(g, ds, e, Optimizers(run, s.device, g, ds, e),
                EMA(g, run.ema_decay, run.ema_rampup) if run.ema_decay > 0 else None, scaler)


def sampling_generator(s: Setup, nets: Nets) -> Generator:
    """The generator to sample from: G, or its EMA with BatchNorm statistics recalibrated."""
    if nets.ema is None:
        return nets.g
    return nets.ema.recalibrated(lambda i: sample_prior(
        256, s.run.arch.latent_dim, s.run.arch.prior, generator_for(s.seed, "ema_bn", i)).to(s.device))


def compiled(m: nn.Module | None, mode: str) -> nn.Module | None:
    """What the train step calls for ``m``: the module, or a torch.compile'd wrapper sharing its
    parameters (state dicts, EMA and checkpoints keep using the module itself). ``graph`` is not
    torch.compile: the whole step is captured instead (:mod:`dcgan.training.graphed`)."""
    return m if m is None or mode in ("none", "graph") else torch.compile(m, mode=mode)


@dataclass(frozen=True)
class Wrapped:
    """What a train step calls: each network under DDP and/or torch.compile, sharing the plain
    module's parameters. Penalties (double backward) and sampling use the plain modules."""

    g: nn.Module
    ds: list[nn.Module]
    """Each discriminator, under DDP (one wrapper each) and/or torch.compile."""
    e: nn.Module | None
    ds_no_sync: list[nn.Module]
    """The discriminators in G's loss: no gradients for their weights there, so no DDP sync either."""

    @classmethod
    def around(cls, nets: Nets, s: Setup) -> Wrapped:
        mode = s.run.compile
        g, e = (compiled(distributed.wrap(m, s.dist, s.device), mode) for m in (nets.g, nets.e))
        ds = [compiled(distributed.wrap(d, s.dist, s.device), mode) for d in nets.ds]
        return cls(g, ds, e, [compiled(d, mode) for d in nets.ds] if s.dist.enabled else ds)
