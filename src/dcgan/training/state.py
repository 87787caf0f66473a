"""A training run's frame and state: what stays fixed (:class:`Setup`), everything a checkpoint
holds (:class:`Run`, made by :func:`build_run` and :func:`resume`), and the wrapped networks a
step calls (:class:`Wrapped`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcgan.config import TrainParams
from dcgan.errors import UserError
from dcgan.models import (
    Discriminator,
    Encoder,
    GANConfig,
    Generator,
    build,
    build_encoder,
    init_weights,
    sample_prior,
)
from dcgan.seeding import derive_seed, generator_for
from dcgan.training import checkpoint as ckpt
from dcgan.training import distributed
from dcgan.training.distributed import DistEnv
from dcgan.training.ema import EMA

Log = Callable[[str], None]
Fingerprint = str | dict[str, object]
"""What identifies a run for resuming: :func:`checkpoint.fingerprint` (or a plain id in tests)."""


def compiled(m: nn.Module | None, mode: str) -> nn.Module | None:
    """What the train step calls for ``m``: the module, or a torch.compile'd wrapper sharing its
    parameters (state dicts, EMA and checkpoints keep using the module itself)."""
    return m if m is None or mode == "none" else torch.compile(m, mode=mode)


@dataclass(frozen=True)
class Setup:
    """The fixed frame of a run: params, architecture, seed, device, processes, number format."""

    p: TrainParams
    cfg: GANConfig
    seed: int
    device: torch.device
    dist: DistEnv
    memory_format: torch.memory_format
    amp_dtype: torch.dtype | None

    @classmethod
    def make(cls, p: TrainParams, cfg: GANConfig, seed: int, device: torch.device,
             dist: DistEnv) -> Setup:
        if p.precision == "fp16" and device.type != "cuda":
            raise UserError(f"train.precision fp16 needs a CUDA device (loss scaling), not "
                            f"{device.type}; use bf16 or fp32")
        amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[p.precision]
        fmt = torch.channels_last if p.channels_last else torch.contiguous_format
        return cls(p, cfg, seed, device, dist, fmt, amp)

    def autocast(self) -> AbstractContextManager:
        """Forward passes in reduced precision; losses and penalties are computed outside, in fp32."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)


@dataclass
class Run:
    """Everything a checkpoint holds: the networks (G, the K discriminators, E), their
    optimizers, the EMA of G, the loss scaler, the position (epoch, offset into it, global
    step) and the best generator so far."""

    g: Generator
    ds: list[Discriminator]
    e: Encoder | None
    opt_g: torch.optim.Adam
    opt_ds: list[torch.optim.Adam]
    opt_e: torch.optim.Adam | None
    ema: EMA | None
    scaler: torch.amp.GradScaler
    epoch: int = 0
    offset: int = 0
    step: int = 0
    wall_prev: float = 0.0
    resumed_from: int | None = None
    best_fid: float | None = None
    best_step: int | None = None
    g_best: dict[str, torch.Tensor] | None = None
    images_seen: int = 0
    started: float = field(default_factory=time.perf_counter)

    def wall_s(self) -> float:
        return self.wall_prev + (time.perf_counter() - self.started)

    def set_lr(self, lr: float) -> None:
        for opt in (self.opt_g, *self.opt_ds, self.opt_e):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr

    def snapshot(self, fingerprint: Fingerprint, world_size: int, finished: bool) -> dict[str, Any]:
        return {
            "fingerprint": ckpt.fingerprint_id(fingerprint),
            **({"fingerprint_inputs": fingerprint} if isinstance(fingerprint, dict) else {}),
            "world_size": world_size, "epoch": self.epoch,
            "offset": self.offset, "step": self.step, "finished": finished, "wall_s": self.wall_s(),
            "g": self.g.state_dict(), "d": [d.state_dict() for d in self.ds],
            "opt_g": self.opt_g.state_dict(), "opt_d": [o.state_dict() for o in self.opt_ds],
            **({"e": self.e.state_dict(), "opt_e": self.opt_e.state_dict()} if self.e is not None else {}),
            **({"g_ema": self.ema.state_dict()} if self.ema is not None else {}),
            **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}),
            **({"g_best": self.g_best, "best_fid": self.best_fid, "best_step": self.best_step}
               if self.g_best else {}),
        }

    def load(self, state: dict[str, Any]) -> None:
        """The reverse of :meth:`snapshot`."""
        self.g.load_state_dict(state["g"])
        self.opt_g.load_state_dict(state["opt_g"])
        if len(state["d"]) != len(self.ds):
            raise UserError(f"checkpoint holds {len(state['d'])} discriminators and this run has "
                            f"{len(self.ds)} (train.discriminators)")
        for d, opt, sd, so in zip(self.ds, self.opt_ds, state["d"], state["opt_d"], strict=True):
            d.load_state_dict(sd)
            opt.load_state_dict(so)
        if self.e is not None:
            self.e.load_state_dict(state["e"])
            self.opt_e.load_state_dict(state["opt_e"])
        if self.ema is not None:
            self.ema.load_state_dict(state["g_ema"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.offset, self.step = int(state["epoch"]), int(state["offset"]), int(state["step"])
        self.wall_prev = float(state["wall_s"])
        self.resumed_from = self.step
        if "g_best" in state:
            self.g_best = {k: v.cpu() for k, v in state["g_best"].items()}
            self.best_fid, self.best_step = float(state["best_fid"]), int(state["best_step"])


def _adam(params, p: TrainParams) -> torch.optim.Adam:
    # foreach: one fused kernel launch per param group instead of one per tensor
    return torch.optim.Adam(params, lr=p.lr, betas=(p.beta1, p.beta2), foreach=True)


def extra_discriminator(cfg: GANConfig, seed: int, k: int) -> Discriminator:
    """Discriminator k >= 1 of an ensemble: DCGAN init from its own derived seed (the global
    RNG is left as it was, so D0, G and E initialise as in a single-D run)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "discriminator", k))
        d = Discriminator(cfg)
        d.apply(init_weights)
    return d


def build_run(s: Setup) -> Run:
    """Fresh networks (DCGAN init from the seed), optimizers, EMA and loss scaler."""
    p, fmt = s.p, s.memory_format
    torch.manual_seed(s.seed)  # init weights; everything after draws from derived generators
    g, d = build(s.cfg)
    e = build_encoder(s.cfg) if p.encoder else None
    ds = [d, *(extra_discriminator(s.cfg, s.seed, k) for k in range(1, p.discriminators))]
    g.to(s.device, memory_format=fmt)
    for d in ds:
        d.to(s.device, memory_format=fmt)
    e = e.to(s.device, memory_format=fmt) if e is not None else None
    if s.dist.enabled and p.sync_bn:  # before the optimizers: conversion may make new parameters
        g = distributed.convert_sync_bn(g, s.device)
        ds = [distributed.convert_sync_bn(d, s.device) for d in ds]
        e = distributed.convert_sync_bn(e, s.device) if e is not None else None
    # fp16 only: scale losses so small gradients survive; skips steps whose gradients overflow
    scaler = torch.amp.GradScaler(s.device.type, enabled=p.precision == "fp16")
    return Run(g, ds, e, _adam(g.parameters(), p), [_adam(d.parameters(), p) for d in ds],
               _adam(e.parameters(), p) if e is not None else None,
               EMA(g, p.ema_decay) if p.ema_decay > 0 else None, scaler)


def resume(run: Run, s: Setup, ckpt_dir: str | Path, fingerprint: Fingerprint, log: Log) -> None:
    """Load the newest checkpoint of this very run (same fingerprint) into ``run``; one of
    another run is reported and cleared, one of another process count refused."""
    state, path = ckpt.load_latest(ckpt_dir, map_location=s.device, warn=log)
    s.dist.barrier()  # every rank has read the checkpoint before rank 0 may clear it
    if state is not None and state["fingerprint"] != ckpt.fingerprint_id(fingerprint):
        changed = ckpt.changed_keys(state.get("fingerprint_inputs"), fingerprint)
        log(f"checkpoint {path} is from a run with other training params, data or code "
            f"(changed: {changed}); training from scratch")
        if s.dist.is_main:
            ckpt.clear(ckpt_dir)
        return
    if state is None:
        return
    saved_by = int(state.get("world_size", 1))
    if saved_by != s.dist.world_size:
        raise UserError(f"checkpoint {path} was saved by {saved_by} processes and this run has "
                        f"{s.dist.world_size}: resume with train.nproc: {saved_by} (the "
                        "checkpoint is left as it is)")
    run.load(state)
    log(f"resuming from {path} at epoch {run.epoch}, step {run.step}")


def sampling_generator(s: Setup, run: Run) -> Generator:
    """The generator to sample from: G, or its EMA with BatchNorm statistics recalibrated."""
    if run.ema is None:
        return run.g
    return run.ema.recalibrated(lambda i: sample_prior(
        256, s.cfg.latent_dim, s.cfg.prior, generator_for(s.seed, "ema_bn", i)).to(s.device))


@dataclass(frozen=True)
class Wrapped:
    """What a train step calls: each network under DDP and/or torch.compile, sharing the plain
    module's parameters. Penalties (double backward) and sampling use the plain modules."""

    g: nn.Module
    ds: list[nn.Module]
    """Each discriminator, under DDP (one wrapper each) and/or torch.compile."""
    e: nn.Module | None
    ds_no_sync: list[nn.Module]
    """The discriminators in the G step: no gradients for their weights there, so no DDP sync either."""

    @classmethod
    def around(cls, run: Run, s: Setup) -> Wrapped:
        mode = s.p.compile
        g, e = (compiled(distributed.wrap(m, s.dist, s.device), mode) for m in (run.g, run.e))
        ds = [compiled(distributed.wrap(d, s.dist, s.device), mode) for d in run.ds]
        return cls(g, ds, e, [compiled(d, mode) for d in run.ds] if s.dist.enabled else ds)
