"""The networks being trained and their optimizers (:class:`Nets`, made by :func:`build_nets`),
and what a train step calls for them (:class:`Wrapped`: DDP and/or torch.compile around each)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dcgan.core.errors import UserError
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
from dcgan.training.settings import Setup


@dataclass
class Nets:
    """G, the K discriminators and E (when trained), their Adam optimizers, the EMA of G and the
    loss scaler (fp16 only): every trained number a checkpoint holds."""

    g: Generator
    ds: list[Discriminator]
    e: Encoder | None
    opt_g: torch.optim.Adam
    opt_ds: list[torch.optim.Adam]
    opt_e: torch.optim.Adam | None
    ema: EMA | None
    scaler: torch.amp.GradScaler
    d_lr_scale: float = 1.0
    """The discriminators' lr over G's (train.d_lr / train.lr; 1 without TTUR)."""

    def set_lr(self, lr: float) -> None:
        """G's (and E's) learning rate; the discriminators get ``lr * d_lr_scale``."""
        for opt in (self.opt_g, *self.opt_ds, self.opt_e):
            if opt is not None:
                value = lr * self.d_lr_scale if opt in self.opt_ds and self.d_lr_scale != 1.0 else lr
                for group in opt.param_groups:
                    if isinstance(group["lr"], torch.Tensor):  # a captured step reads it from there
                        group["lr"].fill_(value)
                    else:
                        group["lr"] = value

    def named(self) -> dict[str, nn.Module | None]:
        """{"g", "d" (then "d1", "d2", ...), "e"}: the plain modules."""
        return {"g": self.g, "e": self.e, **{"d" if k == 0 else f"d{k}": d for k, d in enumerate(self.ds)}}

    def state_dict(self) -> dict[str, Any]:
        return {
            "g": self.g.state_dict(), "d": [d.state_dict() for d in self.ds],
            "opt_g": self.opt_g.state_dict(), "opt_d": [o.state_dict() for o in self.opt_ds],
            **({"e": self.e.state_dict(), "opt_e": self.opt_e.state_dict()} if self.e is not None else {}),
            **({"g_ema": self.ema.state_dict()} if self.ema is not None else {}),
            **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Weights and optimizer state from a checkpoint, whichever device and step mode saved it:
        each optimizer keeps this run's form (:func:`load_optimizer`)."""
        self.g.load_state_dict(state["g"])
        load_optimizer(self.opt_g, state["opt_g"])
        if len(state["d"]) != len(self.ds):
            raise UserError(f"checkpoint holds {len(state['d'])} discriminators and this run has "
                            f"{len(self.ds)} (train.discriminators)")
        for d, opt, sd, so in zip(self.ds, self.opt_ds, state["d"], state["opt_d"], strict=True):
            d.load_state_dict(sd)
            load_optimizer(opt, so)
        if self.e is not None:
            self.e.load_state_dict(state["e"])
            load_optimizer(self.opt_e, state["opt_e"])
        if self.ema is not None:
            self.ema.load_state_dict(state["g_ema"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


def load_optimizer(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """``opt.load_state_dict(saved)``, then this run's form back on every group: a captured step
    (CUDA graph) needs ``capturable`` Adam with its lr and step counts in device memory, an
    eager one plain Adam with a float lr and step counts on the host. A checkpoint saved in the
    other form (a CPU run resumed on CUDA with ``train.compile: graph``, or the reverse) would
    otherwise make Adam refuse its first step. The numbers themselves are unchanged."""
    forms = [(g.get("capturable", False), g["lr"]) for g in opt.param_groups]
    opt.load_state_dict(saved)
    for group, (capturable, lr) in zip(opt.param_groups, forms, strict=True):
        value = float(group["lr"])  # the saved lr (a schedule may have changed it)
        if isinstance(lr, torch.Tensor):
            group["lr"] = lr.fill_(value)  # this run's tensor: a captured step reads it
        else:
            group["lr"] = value
        group["capturable"] = capturable
        for param in group["params"]:
            st = opt.state.get(param, {})
            if isinstance(st.get("step"), torch.Tensor):
                st["step"] = st["step"].to(param.device if capturable else "cpu", torch.float32)


def extra_discriminator(s: Setup, k: int) -> Discriminator:
    """Discriminator k >= 1 of an ensemble: DCGAN init from its own derived seed (the global
    RNG is left as it was, so D0, G and E initialise as in a single-D run)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(s.seed, "discriminator", k))
        d = Discriminator(s.cfg)
        d.apply(init_weights)
    return d


def build_nets(s: Setup) -> Nets:
    """Fresh networks (DCGAN init from the seed), optimizers, EMA and loss scaler."""
    t, fmt = s.settings, s.memory_format
    torch.manual_seed(s.seed)  # init weights; everything after draws from derived generators
    g, d = build(s.cfg)
    e = build_encoder(s.cfg) if s.cfg.encoder else None
    ds = [d, *(extra_discriminator(s, k) for k in range(1, t.discriminators))]
    g.to(s.device, memory_format=fmt)
    for d in ds:
        d.to(s.device, memory_format=fmt)
    e = e.to(s.device, memory_format=fmt) if e is not None else None
    if s.dist.enabled and t.sync_bn:  # before the optimizers: conversion may make new parameters
        g = distributed.convert_sync_bn(g, s.device)
        ds = [distributed.convert_sync_bn(d, s.device) for d in ds]
        e = distributed.convert_sync_bn(e, s.device) if e is not None else None

    capturable = t.compile == "graph" and s.device.type == "cuda"

    def adam(params, lr: float = t.lr) -> torch.optim.Adam:
        # foreach: one fused kernel launch per param group instead of one per tensor; a captured
        # step (CUDA graph) needs Adam's step count and learning rate in device memory
        if capturable:
            return torch.optim.Adam(params, lr=torch.tensor(lr, device=s.device), betas=(t.beta1, t.beta2),
                                    foreach=True, capturable=True)
        return torch.optim.Adam(params, lr=lr, betas=(t.beta1, t.beta2), foreach=True)

    # fp16 only: scale losses so small gradients survive; skips steps whose gradients overflow
    scaler = torch.amp.GradScaler(s.device.type, enabled=t.precision == "fp16")
    d_lr = t.lr if t.d_lr is None else t.d_lr
    return Nets(g, ds, e, adam(g.parameters()), [adam(d.parameters(), d_lr) for d in ds],
                adam(e.parameters()) if e is not None else None,
                EMA(g, t.ema_decay, t.ema_rampup) if t.ema_decay > 0 else None, scaler, d_lr / t.lr)


def sampling_generator(s: Setup, nets: Nets) -> Generator:
    """The generator to sample from: G, or its EMA with BatchNorm statistics recalibrated."""
    if nets.ema is None:
        return nets.g
    return nets.ema.recalibrated(lambda i: sample_prior(
        256, s.cfg.latent_dim, s.cfg.prior, generator_for(s.seed, "ema_bn", i)).to(s.device))


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
        mode = s.settings.compile
        g, e = (compiled(distributed.wrap(m, s.dist, s.device), mode) for m in (nets.g, nets.e))
        ds = [compiled(distributed.wrap(d, s.dist, s.device), mode) for d in nets.ds]
        return cls(g, ds, e, [compiled(d, mode) for d in nets.ds] if s.dist.enabled else ds)
