"""The DCGAN training loop: in-memory data, derived seeds, exact resume.

Every random draw is a pure function of (seed, purpose, epoch or step): the data order of
epoch ``e`` comes from ``derive_seed(seed, "order", e)`` and the noise, penalty interpolation
and DiffAugment draws of step ``s`` from ``derive_seed(seed, purpose, s)``. A checkpoint
therefore needs only weights, optimizer/EMA state and the position (epoch, offset, step) for
a resumed run to replay exactly what an uninterrupted run does, whatever the batch schedule.

One step is the official example's: :func:`d_step` (D on a real and a generated batch), then
:func:`g_step` (G through the updated D). The techniques (each a switch in params.yaml
``train``) plug into those two: the latent prior, BCE/hinge/WGAN losses, R1 and WGAN-GP
penalties with lazy regularisation (:func:`d_penalties`), DiffAugment, EMA of G, an encoder
with reconstruction and latent-cycle losses (:func:`encoder_losses`), and a batch-size
schedule with lr scaling.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dcgan import faults, losses
from dcgan.config import TrainParams, check_divisible
from dcgan.errors import UserError
from dcgan.models import (
    Discriminator,
    Encoder,
    GANConfig,
    Generator,
    build,
    build_encoder,
    sample_prior,
)
from dcgan.seeding import generator_for
from dcgan.training import checkpoint as ckpt
from dcgan.training import distributed
from dcgan.training.diffaug import diff_augment
from dcgan.training.distributed import SINGLE, DistEnv
from dcgan.training.ema import EMA
from dcgan.training.schedule import batch_size_at, count_steps, lr_for

Log = Callable[[str], None]
Fingerprint = str | dict[str, object]
"""What identifies a run for resuming: :func:`checkpoint.fingerprint` (or a plain id in tests)."""


class MetricLogger(Protocol):
    """What the loop needs from a logger (dvclive in the stage, anything in tests)."""

    def metric(self, name: str, value: float, step: int) -> None: ...
    def image(self, name: str, grid: torch.Tensor, step: int) -> None: ...


class TrainingDiverged(UserError):
    """A loss or weight became NaN/inf; the last good checkpoint is left as it was."""


class NullLogger:
    def metric(self, name: str, value: float, step: int) -> None:
        pass

    def image(self, name: str, grid: torch.Tensor, step: int) -> None:
        pass


@dataclass
class TrainResult:
    g: Generator
    """The generator to sample from: the EMA generator when train.ema_decay > 0."""
    d: Discriminator
    cfg: GANConfig
    step: int
    epoch: int
    wall_s: float
    images_seen: int
    resumed_from_step: int | None
    g_best: dict[str, torch.Tensor] | None = None
    """State dict of the best-by-FID generator (None when FID was never computed)."""
    best_fid: float | None = None
    best_step: int | None = None
    e: Encoder | None = None
    g_raw: Generator | None = None
    """The trained (non-averaged) generator when EMA is on."""


def fixed_noise(seed: int, n: int, latent_dim: int, prior: str = "normal") -> torch.Tensor:
    """The noise behind the per-epoch sample grid: the same for every epoch and run."""
    return sample_prior(n, latent_dim, prior, generator_for(seed, "fixed_noise"))


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=generator_for(seed, "order", epoch))


def dataset_fits(nbytes: int, free_bytes: int, fraction: float = 0.25) -> bool:
    """Whether a dataset of ``nbytes`` goes on an accelerator with ``free_bytes`` free: at most
    ``fraction`` of it, so that the networks, activations and cuDNN workspaces keep the rest."""
    return nbytes <= fraction * free_bytes


def place_data(images: np.ndarray, device: torch.device, log: Log = print) -> torch.Tensor:
    """The training images as one uint8 tensor: on the device when it fits there (CUDA: a
    quarter of the free memory), else in pinned host memory, batches copied over per step."""
    data = torch.from_numpy(images)
    if device.type != "cuda":
        return data.to(device)
    free, _ = torch.cuda.mem_get_info(device)
    if dataset_fits(data.nbytes, free):
        return data.to(device)
    log(f"training data ({data.nbytes / 2**30:.1f} GiB) is more than a quarter of the GPU's free "
        f"memory ({free / 2**30:.1f} GiB): kept in pinned host memory, copied per batch")
    return data.pin_memory()


def compiled(m: nn.Module | None, mode: str) -> nn.Module | None:
    """What the train step calls for ``m``: the module, or a torch.compile'd wrapper sharing its
    parameters (state dicts, EMA and checkpoints keep using the module itself)."""
    return m if m is None or mode == "none" else torch.compile(m, mode=mode)


# ---------------------------------------------------------------------------------------
# what stays fixed for a run, and the run's state


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
    """Everything a checkpoint holds: the networks, their optimizers, the EMA of G, the loss
    scaler, the position (epoch, offset into it, global step) and the best generator so far."""

    g: Generator
    d: Discriminator
    e: Encoder | None
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
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
        for opt in (self.opt_g, self.opt_d, self.opt_e):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr

    def snapshot(self, fingerprint: Fingerprint, world_size: int, finished: bool) -> dict[str, Any]:
        return {
            "fingerprint": ckpt.fingerprint_id(fingerprint),
            **({"fingerprint_inputs": fingerprint} if isinstance(fingerprint, dict) else {}),
            "world_size": world_size, "epoch": self.epoch,
            "offset": self.offset, "step": self.step, "finished": finished, "wall_s": self.wall_s(),
            "g": self.g.state_dict(), "d": self.d.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            **({"e": self.e.state_dict(), "opt_e": self.opt_e.state_dict()} if self.e is not None else {}),
            **({"g_ema": self.ema.state_dict()} if self.ema is not None else {}),
            **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}),
            **({"g_best": self.g_best, "best_fid": self.best_fid, "best_step": self.best_step}
               if self.g_best else {}),
        }

    def load(self, state: dict[str, Any]) -> None:
        """The reverse of :meth:`snapshot`."""
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
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


def build_run(s: Setup) -> Run:
    """Fresh networks (DCGAN init from the seed), optimizers, EMA and loss scaler."""
    p, fmt = s.p, s.memory_format
    torch.manual_seed(s.seed)  # init weights; everything after draws from derived generators
    g, d = build(s.cfg)
    g.to(s.device, memory_format=fmt)
    d.to(s.device, memory_format=fmt)
    e = build_encoder(s.cfg).to(s.device, memory_format=fmt) if p.encoder else None
    if s.dist.enabled and p.sync_bn:  # before the optimizers: conversion may make new parameters
        g, d = distributed.convert_sync_bn(g, s.device), distributed.convert_sync_bn(d, s.device)
        e = distributed.convert_sync_bn(e, s.device) if e is not None else None
    # fp16 only: scale losses so small gradients survive; skips steps whose gradients overflow
    scaler = torch.amp.GradScaler(s.device.type, enabled=p.precision == "fp16")
    return Run(g, d, e, _adam(g.parameters(), p), _adam(d.parameters(), p),
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
    d: nn.Module
    e: nn.Module | None
    d_no_sync: nn.Module
    """D in the G step: no gradients for D's weights there, so no DDP gradient sync either."""

    @classmethod
    def around(cls, run: Run, s: Setup) -> Wrapped:
        mode = s.p.compile
        g, d, e = (compiled(distributed.wrap(m, s.dist, s.device), mode) for m in (run.g, run.d, run.e))
        return cls(g, d, e, compiled(run.d, mode) if s.dist.enabled else d)


# ---------------------------------------------------------------------------------------
# one step: D, then G


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


# ---------------------------------------------------------------------------------------
# watching the run: running means, divergence


class RunningMeans:
    """Sums of the logged numbers since the last log step, kept on the device (no host sync)."""

    def __init__(self, names: list[str], device: torch.device):
        self.names = names
        self.sums = torch.zeros(len(names), device=device)
        self.count = 0

    def add(self, row: torch.Tensor) -> None:
        self.sums += row
        self.count += 1

    def pop(self, dist: DistEnv) -> list[float]:
        """The means over all processes since the last call (one host sync), then reset."""
        values = (dist.all_mean(self.sums) / self.count).tolist()
        self.sums.zero_()
        self.count = 0
        return values


class DivergenceGuard:
    """Stops training at the first NaN/inf loss or weight, before anything is saved.

    The step of the first non-finite loss is kept on the device (no per-step host sync) and
    read at log steps, checkpoints and epoch ends.
    """

    def __init__(self, names: list[str], device: torch.device, dist: DistEnv, ckpt_dir: str | Path):
        self.names, self.device, self.dist, self.ckpt_dir = names, device, dist, ckpt_dir
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)  # -1: none yet
        self.bad_losses = torch.zeros(len(names), device=device)

    @torch.no_grad()
    def record(self, row: torch.Tensor, step: int) -> None:
        """Note ``row`` (the numbers of global step ``step``) if it is the first non-finite one."""
        newly_bad = (self.first_bad < 0) & ~torch.isfinite(row).all()
        self.first_bad.copy_(torch.where(newly_bad, torch.full_like(self.first_bad, step), self.first_bad))
        self.bad_losses.copy_(torch.where(newly_bad, row, self.bad_losses))

    def check(self, where: str, run: Run) -> None:
        """Raise :class:`TrainingDiverged` if a loss since the start or a weight is non-finite."""
        bad_step = int(self.dist.all_max(self.first_bad))  # the one host sync
        if bad_step >= 0:
            values = ", ".join(f"{k}={v:.4g}" for k, v in
                               zip(self.names, self.bad_losses.tolist(), strict=True))
            raise TrainingDiverged(f"training diverged at step {bad_step}: {values}. {self._kept()}")
        for net_name, net in (("G", run.g), ("D", run.d), ("E", run.e)):
            # one host sync per network, not one per parameter tensor
            if net is not None and self.dist.any(not bool(torch.stack(
                    [torch.isfinite(t).all() for t in net.parameters()]).all()), self.device):
                raise TrainingDiverged(f"training diverged: {net_name} has non-finite weights after "
                                       f"step {run.step} ({where}). {self._kept()}")

    def _kept(self) -> str:
        last = ckpt.list_checkpoints(self.ckpt_dir)
        hint = "Lower train.lr or add a penalty (train.r1_gamma, train.gp_lambda)"
        return (f"The last good checkpoint {last[0]} is left as it was. {hint}; changed params "
                "train from scratch." if last else f"No checkpoint was written yet. {hint}.")


# ---------------------------------------------------------------------------------------
# the loop


@dataclass
class Loop:
    """What the loop reports to and checks with, besides the run itself."""

    ckpt_dir: str | Path
    fingerprint: Fingerprint
    logger: MetricLogger
    log: Log
    means: RunningMeans
    guard: DivergenceGuard
    bar: tqdm
    z_fixed: torch.Tensor
    fid_fn: Callable[[Generator], float] | None
    on_step: Callable[[int, dict[str, nn.Module | None]], None] | None
    stop_after_steps: int | None

    def save(self, s: Setup, run: Run, finished: bool) -> None:
        if s.dist.is_main:  # rank 0 alone writes checkpoints
            ckpt.save_checkpoint(self.ckpt_dir, run.step, run.snapshot(self.fingerprint,
                                                                        s.dist.world_size, finished))


def after_step(s: Setup, run: Run, loop: Loop, bs: int) -> None:
    """Per-step hooks, then the periodic work: losses to the logger, a checkpoint."""
    p = s.p
    if loop.on_step is not None:
        loop.on_step(run.step, {"g": run.g, "d": run.d, "e": run.e})
    if faults.armed("kill_after_step", run.step):
        faults.kill()
    if run.step % p.log_every == 0:
        loop.guard.check("log", run)
        values = loop.means.pop(s.dist)
        for name, v in zip(loop.means.names, values, strict=True):
            loop.logger.metric(f"train/{name}", v, run.step)
        if p.batch_schedule:
            loop.logger.metric("train/batch_size", bs, run.step)
        loop.bar.set_postfix(loss_d=f"{values[0]:.3f}", loss_g=f"{values[1]:.3f}", bs=bs)
    if run.step % p.checkpoint_every == 0:
        loop.guard.check("checkpoint", run)
        loop.save(s, run, False)


def train_epoch(s: Setup, run: Run, nets: Wrapped, loop: Loop, data: torch.Tensor,
                default_bs: int) -> bool:
    """Steps until the epoch has no full batch left; True when stopped early (stop_after_steps)."""
    p, schedule = s.p, s.p.batch_schedule
    base_bs = schedule[0][1] if schedule else default_bs
    order = epoch_order(s.seed, run.epoch, len(data)).to(s.device)
    mark_step = (torch.compiler.cudagraph_mark_step_begin
                 if p.compile == "reduce-overhead" and s.device.type == "cuda" else lambda: None)
    while True:
        bs = batch_size_at(run.step, schedule, default_bs)
        if run.offset + bs > len(data):  # drop the last partial batch: every step sees a full batch
            return False
        run.set_lr(lr_for(bs, base_bs, p.lr, p.lr_scaling))
        mark_step()  # CUDA graphs: outputs of the previous step are no longer read
        b = next_batch(s, run, data, order, bs)
        loss_d, out_real, out_fake, fake = d_step(s, run, nets, b)
        loss_g, loss_recon = g_step(s, run, nets, b, fake)
        row = step_row(s, loss_d, loss_g, out_real, out_fake, loss_recon)
        loop.means.add(row)
        loop.guard.record(row, run.step + 1)
        run.offset += bs
        run.step += 1
        run.images_seen += bs
        loop.bar.update(1)
        after_step(s, run, loop, bs)
        if loop.stop_after_steps is not None and run.step >= loop.stop_after_steps:
            return True


def end_epoch(s: Setup, run: Run, loop: Loop) -> None:
    """The fixed-noise grid, FID every ``eval_every`` epochs (keeping the best generator), and
    an end-of-epoch checkpoint."""
    p = s.p
    loop.guard.check("epoch end", run)
    run.epoch += 1
    run.offset = 0
    gs = sampling_generator(s, run)
    gs.eval()
    with torch.no_grad():
        grid = gs(loop.z_fixed)
    loop.logger.image("fixed_noise.png", grid, run.step)
    if loop.fid_fn is not None and s.dist.is_main and p.eval_every and (
            run.epoch % p.eval_every == 0 or run.epoch == p.epochs):
        fid = float(loop.fid_fn(gs))
        loop.logger.metric("train/fid", fid, run.step)
        best = run.best_fid is None or fid < run.best_fid
        loop.bar.write(f"epoch {run.epoch}: FID {fid:.3f}" + (" (best)" if best else ""))
        if best:
            run.best_fid, run.best_step = fid, run.step
            run.g_best = {k: v.detach().cpu().clone() for k, v in gs.state_dict().items()}
    if run.ema is None:
        run.g.train()
    loop.save(s, run, run.epoch >= p.epochs)


def batch_sizes(p: TrainParams, n: int, batch_size: int | None, dist: DistEnv) -> tuple[int, int]:
    """(the batch size outside the schedule, total steps); refuses sizes that do not fit."""
    default_bs = batch_size if batch_size is not None else p.batch_size
    sizes = [default_bs, *[b for _, b in p.batch_schedule]]
    if n < max(sizes):
        raise ValueError(f"{n} training images is fewer than the largest batch size {max(sizes)}")
    check_divisible(sizes, dist.world_size, "train.batch_size")  # `auto` is resolved only now
    return default_bs, count_steps(n, p.epochs, p.batch_schedule, default_bs)


def train(
    p: TrainParams,
    cfg: GANConfig,
    seed: int,
    images: np.ndarray,
    device: torch.device,
    ckpt_dir: str | Path,
    fingerprint: Fingerprint,
    logger: MetricLogger | None = None,
    log: Log = print,
    stop_after_steps: int | None = None,
    fid_fn: Callable[[Generator], float] | None = None,
    batch_size: int | None = None,
    dist: DistEnv = SINGLE,
    on_step: Callable[[int, dict[str, nn.Module | None]], None] | None = None,
) -> TrainResult:
    """Train (or resume) a DCGAN on uint8 images (N, C, H, W); returns the final models.

    ``fid_fn(G)`` (G in eval mode; the EMA generator when on) is called every
    ``p.eval_every`` epochs and after the last; the generator with the lowest value is kept
    as the best. ``batch_size`` replaces ``p.batch_size`` (for ``auto``, resolved by the
    caller). ``stop_after_steps`` ends the run early after that global step (tests of resume).

    ``dist`` (from :func:`distributed.init_from_env`, under torchrun): data-parallel training,
    every rank calling this with the same arguments; batch sizes are global, each rank takes its
    slice of every batch and noise draw, G/D/E run under DDP, and only rank 0 logs, evaluates
    and writes checkpoints. ``on_step(step, {"g", "d", "e"})`` is called after every step.
    """
    default_bs, total_steps = batch_sizes(p, len(images), batch_size, dist)
    logger, log = (logger or NullLogger(), log) if dist.is_main else (NullLogger(), lambda m: None)
    s = Setup.make(p, cfg, seed, device, dist)
    if device.type == "cuda":
        # fixed shapes per batch size: let cuDNN pick the fastest convolution algorithms
        torch.backends.cudnn.benchmark = True
    run = build_run(s)
    resume(run, s, ckpt_dir, fingerprint, log)
    data = place_data(images, device, log)  # uint8; converted per batch
    names = ["loss_d", "loss_g", "d_real", "d_fake"] + (["loss_recon"] if run.e is not None else [])
    loop = Loop(ckpt_dir, fingerprint, logger, log, RunningMeans(names, device),
                DivergenceGuard(names, device, dist, ckpt_dir),
                tqdm(total=total_steps, initial=run.step, desc="train", unit="step", dynamic_ncols=True,
                     mininterval=1.0, disable=True if not dist.is_main else False),
                fixed_noise(seed, p.sample_grid, cfg.latent_dim, cfg.prior).to(device),
                fid_fn, on_step, stop_after_steps)
    nets = Wrapped.around(run, s)  # after resume: DDP broadcasts rank 0's weights on creation
    run.started = time.perf_counter()
    run.g.train()
    run.d.train()
    while run.epoch < p.epochs:
        if train_epoch(s, run, nets, loop, data, default_bs):
            break
        end_epoch(s, run, loop)
    loop.bar.close()
    loop.guard.check("end", run)
    return result(s, run)


def result(s: Setup, run: Run) -> TrainResult:
    """The models in eval mode, and what the run did."""
    if run.e is not None:
        run.e.eval()
    out_g = sampling_generator(s, run).eval()
    return TrainResult(out_g, run.d.eval(), s.cfg, run.step, run.epoch, run.wall_s(), run.images_seen,
                       run.resumed_from, run.g_best, run.best_fid, run.best_step, run.e,
                       run.g.eval() if run.ema is not None else None)
