"""The DCGAN training loop: in-memory data, derived seeds, exact resume (the step itself is in
:mod:`dcgan.training.step`, the run's state in :mod:`~dcgan.training.state`, the divergence
guard in :mod:`~dcgan.training.watch`).

Every random draw is a pure function of (seed, purpose, epoch or step): the data order of
epoch ``e`` comes from ``derive_seed(seed, "order", e)`` and the noise, penalty interpolation
and DiffAugment draws of step ``s`` from ``derive_seed(seed, purpose, s)``. A checkpoint
therefore needs only weights, optimizer/EMA state and the position (epoch, offset, step) for
a resumed run to replay exactly what an uninterrupted run does, whatever the batch schedule.

Each step is the official example's, ``d_step`` then ``g_step``; the techniques (each a
switch in params.yaml ``train``) plug into those two: the latent prior, BCE/hinge/WGAN losses,
R1 and WGAN-GP penalties with lazy regularisation, K discriminators (GMAN), mean/std input
normalisation, DiffAugment, EMA of G, an encoder with
reconstruction and latent-cycle losses, and a batch-size schedule with lr scaling (here).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dcgan import faults
from dcgan.config import TrainParams, check_divisible
from dcgan.data.store import NpyReader
from dcgan.devices import resolve_precision
from dcgan.models import (
    Discriminator,
    Encoder,
    GANConfig,
    Generator,
    pixels_of,
    sample_prior,
)
from dcgan.progress import progress
from dcgan.seeding import generator_for
from dcgan.training import checkpoint as ckpt
from dcgan.training.data import FileSource, PrefetchSource, TensorSource, place_data
from dcgan.training.distributed import SINGLE, DistEnv
from dcgan.training.schedule import batch_size_at, count_steps, lr_for
from dcgan.training.state import (
    Fingerprint,
    Log,
    Run,
    Setup,
    Wrapped,
    build_run,
    resume,
    sampling_generator,
)
from dcgan.training.step import d_step, g_step, next_batch, step_row
from dcgan.training.watch import DivergenceGuard, RunningMeans, TrainingDiverged

__all__ = ["TrainResult", "TrainingDiverged", "train"]  # TrainingDiverged: raised from here


class MetricLogger(Protocol):
    """What the loop needs from a logger (dvclive in the stage, anything in tests)."""

    def metric(self, name: str, value: float, step: int) -> None: ...
    def image(self, name: str, grid: torch.Tensor, step: int) -> None: ...


class NullLogger:
    def metric(self, name: str, value: float, step: int) -> None:
        pass

    def image(self, name: str, grid: torch.Tensor, step: int) -> None:
        pass


@dataclass
class TrainResult:
    g: Generator
    """The generator to sample from: the EMA generator when train.ema_decay > 0."""
    ds: list[Discriminator]
    """The discriminators (one unless train.discriminators > 1)."""
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
    bar: tqdm  # from dcgan.progress.progress
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
        loop.on_step(run.step, {"g": run.g, "e": run.e,
                                **{"d" if k == 0 else f"d{k}": d for k, d in enumerate(run.ds)}})
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


def epoch_plan(step: int, offset: int, n: int, schedule: tuple[tuple[int, int], ...], default_bs: int,
               last_step: int | None) -> list[tuple[int, int]]:
    """``(offset, batch size)`` of each step left in the epoch: full batches only (the last
    partial one is dropped), none past global step ``last_step``."""
    plan = []
    while last_step is None or step < last_step:
        bs = batch_size_at(step, schedule, default_bs)
        if offset + bs > n:
            break
        plan.append((offset, bs))
        offset += bs
        step += 1
    return plan


Source = TensorSource | FileSource | PrefetchSource


def train_epoch(s: Setup, run: Run, nets: Wrapped, loop: Loop, data: Source, default_bs: int
                ) -> str | None:
    """Steps until the epoch has no full batch left (returns None), or until the run's last
    step: ``"stop"`` (stop_after_steps, a test's interruption) or ``"max_steps"``."""
    p, schedule = s.p, s.p.batch_schedule
    base_bs = schedule[0][1] if schedule else default_bs
    order = epoch_order(s.seed, run.epoch, len(data))
    limits = [n for n in (loop.stop_after_steps, p.max_steps or None) if n is not None]
    plan = epoch_plan(run.step, run.offset, len(data), schedule, default_bs, min(limits, default=None))
    data.start_epoch([s.dist.shard(order[o:o + bs]) for o, bs in plan])  # a prefetching source reads ahead
    order = order.to(s.device)
    mark_step = (torch.compiler.cudagraph_mark_step_begin
                 if p.compile == "reduce-overhead" and s.device.type == "cuda" else lambda: None)
    for _, bs in plan:
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
        return "stop"
    if p.max_steps and run.step >= p.max_steps and (
            run.offset + batch_size_at(run.step, schedule, default_bs) <= len(data)):
        return "max_steps"  # mid-epoch: a full batch was left
    return None


def end_epoch(s: Setup, run: Run, loop: Loop, last_step: bool = False) -> None:
    """The fixed-noise grid, FID every ``eval_every`` epochs and at the end of the run (keeping
    the best generator), and a checkpoint. ``last_step``: the run ends mid-epoch (max_steps)."""
    p = s.p
    loop.guard.check("end" if last_step else "epoch end", run)
    if not last_step:
        run.epoch += 1
        run.offset = 0
    last = last_step or run.epoch >= p.epochs or bool(p.max_steps and run.step >= p.max_steps)
    gs = sampling_generator(s, run)
    gs.eval()
    with torch.no_grad():
        grid = pixels_of(gs, gs(loop.z_fixed))
    loop.logger.image("fixed_noise.png", grid, run.step)
    if loop.fid_fn is not None and s.dist.is_main and p.eval_every and (
            (run.epoch % p.eval_every == 0 and not last_step) or last):
        fid = float(loop.fid_fn(gs))
        loop.logger.metric("train/fid", fid, run.step)
        best = run.best_fid is None or fid < run.best_fid
        loop.bar.write(f"epoch {run.epoch}: FID {fid:.3f}" + (" (best)" if best else ""))
        if best:
            run.best_fid, run.best_step = fid, run.step
            run.g_best = {k: v.detach().cpu().clone() for k, v in gs.state_dict().items()}
    if run.ema is None:
        run.g.train()
    loop.save(s, run, last)


def batch_sizes(p: TrainParams, n: int, batch_size: int | None, dist: DistEnv) -> tuple[int, int]:
    """(the batch size outside the schedule, total steps); refuses sizes that do not fit."""
    default_bs = batch_size if batch_size is not None else p.batch_size
    sizes = [default_bs, *[b for _, b in p.batch_schedule]]
    if n < max(sizes):
        raise ValueError(f"{n} training images is fewer than the largest batch size {max(sizes)}")
    check_divisible(sizes, dist.world_size, "train.batch_size")  # `auto` is resolved only now
    total = count_steps(n, p.epochs, p.batch_schedule, default_bs)
    return default_bs, min(total, p.max_steps) if p.max_steps else total


def train(
    p: TrainParams,
    cfg: GANConfig,
    seed: int,
    images: np.ndarray | NpyReader,
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
    """Train (or resume) a DCGAN on uint8 images (N, C, H, W), an array or a file read per
    batch (:class:`~dcgan.data.store.NpyReader`); returns the final models.

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
    if p.precision == "auto":  # the train stage resolves it first (fingerprint, model.json)
        precision, why = resolve_precision(p.precision, device)
        log(f"train: precision {precision} ({why})")
        p = replace(p, precision=precision)
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
                progress(total=total_steps, initial=run.step, desc="train", unit="step", dynamic_ncols=True,
                     mininterval=1.0, disable=not dist.is_main),
                fixed_noise(seed, p.sample_grid, cfg.latent_dim, cfg.prior).to(device),
                fid_fn, on_step, stop_after_steps)
    nets = Wrapped.around(run, s)  # after resume: DDP broadcasts rank 0's weights on creation
    run.started = time.perf_counter()
    run.g.train()
    for d in run.ds:
        d.train()
    try:
        while run.epoch < p.epochs and not (p.max_steps and run.step >= p.max_steps):
            why = train_epoch(s, run, nets, loop, data, default_bs)
            if why == "stop":
                break
            end_epoch(s, run, loop, last_step=why == "max_steps")
    finally:
        data.close()
    loop.bar.close()
    loop.guard.check("end", run)
    return result(s, run)


def result(s: Setup, run: Run) -> TrainResult:
    """The models in eval mode, and what the run did."""
    if run.e is not None:
        run.e.eval()
    out_g = sampling_generator(s, run).eval()
    return TrainResult(out_g, [d.eval() for d in run.ds], s.cfg, run.step, run.epoch, run.wall_s(), run.images_seen,
                       run.resumed_from, run.g_best, run.best_fid, run.best_step, run.e,
                       run.g.eval() if run.ema is not None else None)
