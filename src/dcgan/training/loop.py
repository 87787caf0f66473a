"""The DCGAN training loop: :func:`train`, whose every step is :func:`train_step`.

Every random draw is a pure function of (seed, purpose, epoch or step): the data order of
epoch ``e`` comes from ``derive_seed(seed, "order", e)`` and the noise, penalty interpolation
and DiffAugment draws of step ``s`` from ``derive_seed(seed, purpose, s)``. A checkpoint
therefore needs only weights, optimizer/EMA state and the position (epoch, offset, step) for
a resumed run to replay exactly what an uninterrupted run does, whatever the batch schedule.

The losses are the :class:`~dcgan.training.objective.GANObjective`'s; the loop owns the
optimizer steps, the batch-size schedule with its lr scaling, logging, in-training FID with
the best generator, checkpoints and the divergence guard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dcgan.core import kill_points
from dcgan.core.progress import progress
from dcgan.core.seeding import generator_for
from dcgan.data.store import NpyReader
from dcgan.networks.gan import (
    Discriminator,
    Encoder,
    GANConfig,
    Generator,
    pixels_of,
    sample_prior,
)
from dcgan.training import checkpoint as ckpt
from dcgan.training.ada import AdaPipe
from dcgan.training.batches import Batch, BatchSource, place_data
from dcgan.training.distributed import SINGLE, DistEnv
from dcgan.training.draws import DrawBank
from dcgan.training.graphed import StaticStep
from dcgan.training.guard import DivergenceGuard, RunningMeans, TrainingDiverged
from dcgan.training.inputs import batch_of
from dcgan.training.nets import Nets, Wrapped, build_nets, sampling_generator
from dcgan.training.objective import GANObjective
from dcgan.training.position import BestGenerator, Position
from dcgan.training.resume import Fingerprint, restore, resume_point, snapshot
from dcgan.training.schedule import SHARED, batch_size_at, count_steps, images_before, unshared
from dcgan.training.settings import Run, Setup

__all__ = ["Callbacks", "TrainResult", "TrainingDiverged", "train", "train_step"]  # TrainingDiverged: raised here

Log = Callable[[str], None]
LATEST: Any = "latest"
"""``train(start=LATEST)``: resume from the newest checkpoint of this run in ``ckpt_dir``, if any."""


class MetricLogger(Protocol):
    """What the loop needs from a logger (dvclive in the stage, anything in tests)."""

    def metric(self, name: str, value: float, step: int) -> None: ...
    def image(self, name: str, grid: torch.Tensor, step: int) -> None: ...


class NullLogger:
    def metric(self, name: str, value: float, step: int) -> None:
        pass

    def image(self, name: str, grid: torch.Tensor, step: int) -> None:
        pass


class Callbacks:
    """What a caller may do between steps (override either; the defaults do nothing)."""

    def after_step(self, step: int, nets: dict[str, nn.Module | None]) -> None:
        """Called after every step with the plain networks ({"g", "e", "d", "d1", ...})."""

    def should_stop(self, step: int) -> bool:
        """True ends the run after this step, without the epoch's end (as an interruption would)."""
        return False


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
    ada: dict[str, float | None] | None = None
    """ADA's strength p and last heuristic r_t at the end (None: train.ada off)."""


def fixed_noise(seed: int, n: int, latent_dim: int, prior: str = "normal") -> torch.Tensor:
    """The noise behind the per-epoch sample grid: the same for every epoch and run."""
    return sample_prior(n, latent_dim, prior, generator_for(seed, "fixed_noise"))


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=generator_for(seed, "order", epoch))


def make_batch(s: Setup, data: BatchSource, order: torch.Tensor, offset: int, step: int, bs: int) -> Batch:
    """This rank's slice of the step's real images (``data``: a :mod:`dcgan.training.batches`
    source) and noise."""
    if isinstance(data, torch.Tensor):  # Tensor.take would index the flattened tensor: refuse it
        raise TypeError("make_batch takes a batch source from dcgan.training.batches, not a tensor")
    idx = s.dist.shard(order[offset:offset + bs])  # this rank's slice of the global batch
    raw = data.take(idx).to(s.device, non_blocking=True)
    draws = DrawBank.live(s.generators(step), s.device)
    return batch_of(s, raw, s.noise(step, bs).to(s.device), draws, step, bs)


@contextmanager
def frozen(modules: list[nn.Module]):
    """No gradients for these modules' weights inside the block."""
    for m in modules:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m in modules:
            m.requires_grad_(True)


def train_step(nets: Nets, objective: GANObjective, b: Batch) -> torch.Tensor:
    """One DCGAN step (Radford et al. 2015; Goodfellow et al. 2014, Algorithm 1): returns the
    logged numbers, on the device."""
    fake = objective.generate(b)  # G(z): both updates see the same fakes

    # (1) Update D: maximize log D(x) + log(1 - D(G(z))) (each of the K, plus its penalties)
    d = objective.d_loss(b, fake)
    for opt in nets.opt.ds:
        opt.zero_grad(set_to_none=True)
    nets.scaler.scale(d.loss).backward()
    for opt in nets.opt.ds:
        nets.scaler.step(opt)

    # (2) Update G: maximize log D(G(z)) through the updated D (and E: reconstruct x from E(x))
    with frozen(nets.ds):
        g = objective.g_loss(b, fake)
        for opt in (nets.opt.e, nets.opt.g):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        nets.scaler.scale(g.loss).backward()
        nets.scaler.step(nets.opt.g)
        if nets.opt.e is not None:
            nets.scaler.step(nets.opt.e)
        nets.scaler.update()
    if nets.ema is not None:
        nets.ema.update(nets.g)
    return objective.logged(d, g)


def make_ada(s: Setup) -> AdaPipe | None:
    """The run's ADA (train.ada), p at 0; None when off."""
    o = s.run.objective
    return None if o.ada == "none" else AdaPipe(o.ada, s.device, o.ada_target, o.ada_interval, o.ada_kimg)


def make_objective(s: Setup, nets: Nets, ada: AdaPipe | None = None) -> GANObjective:
    """The objective over the networks as the step calls them (under DDP and/or torch.compile);
    ``ada``: the run's ADA, whose p the loop tunes (None: a new one at p = 0 when train.ada is on)."""
    w = Wrapped.around(nets, s)
    return GANObjective(s.run.objective, g=w.g, ds=w.ds, plain_ds=nets.ds, ds_no_sync=w.ds_no_sync,
                        e=w.e, autocast=s.autocast, dist=s.dist, ada=ada or make_ada(s))


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


@dataclass(kw_only=True)
class Loop:
    """A run in progress: its frame, networks, objective, position and best generator, and what
    it reports to."""

    s: Setup
    nets: Nets
    objective: GANObjective
    pos: Position
    best: BestGenerator
    data: BatchSource
    ckpt_dir: str | Path
    fingerprint: Fingerprint
    logger: MetricLogger
    means: RunningMeans
    guard: DivergenceGuard
    bar: tqdm  # from dcgan.core.progress.progress
    z_fixed: torch.Tensor
    fid_fn: Callable[[Generator], float] | None
    callbacks: Callbacks
    static: StaticStep | None = None
    """train.compile graph: the step on static buffers, captured where possible."""

    def save(self, finished: bool) -> None:
        if self.s.dist.is_main:  # rank 0 alone writes checkpoints
            ckpt.save_checkpoint(self.ckpt_dir, self.pos.step, snapshot(
                self.nets, self.pos, self.best, self.fingerprint, self.s.dist.world_size, finished,
                self.objective.ada))

    def run_epoch(self) -> str | None:
        """Steps until the epoch has no full batch left (returns None), or until the run's last
        step: ``"stop"`` (the callbacks asked) or ``"max_steps"``."""
        t, pos = self.s.run, self.pos
        schedule = t.batch_schedule
        order = epoch_order(self.s.seed, pos.epoch, len(self.data))
        plan = epoch_plan(pos.step, pos.offset, len(self.data), schedule, t.batch_size, t.max_steps or None)
        self.data.start_epoch([self.s.dist.shard(order[o:o + bs]) for o, bs in plan])  # a prefetching source reads ahead
        order = order.to(self.s.device)
        mark_step = (torch.compiler.cudagraph_mark_step_begin
                     if t.compile == "reduce-overhead" and self.s.device.type == "cuda" else lambda: None)
        for _, bs in plan:
            self.nets.opt.set_for_batch(bs)
            if self.nets.ema is not None:  # its ramp-up counts every image trained on, resumed or not
                self.nets.ema.set_images_seen(images_before(pos.step, schedule, t.batch_size), bs)
            mark_step()  # CUDA graphs: outputs of the previous step are no longer read
            row = self.one_step(order, bs)
            self.means.add(row)
            self.guard.record(row, pos.step + 1)
            pos.advance(bs)
            self.bar.update(1)
            self.after_step(bs)
            if self.callbacks.should_stop(pos.step):
                return "stop"
        if t.max_steps and pos.step >= t.max_steps and (
                pos.offset + batch_size_at(pos.step, schedule, t.batch_size) <= len(self.data)):
            return "max_steps"  # mid-epoch: a full batch was left
        return None

    def one_step(self, order: torch.Tensor, bs: int) -> torch.Tensor:
        """The step at the current position: its logged row (on the device)."""
        s, pos = self.s, self.pos
        if self.static is None:
            return train_step(self.nets, self.objective, make_batch(s, self.data, order, pos.offset, pos.step, bs))
        raw = self.data.take(s.dist.shard(order[pos.offset:pos.offset + bs])).to(s.device, non_blocking=True)
        return self.static(raw, s.noise(pos.step, bs), pos.step, bs)

    def after_step(self, bs: int) -> None:
        """Per-step callbacks, then the periodic work: losses to the logger, a checkpoint."""
        t, step, ada = self.s.run, self.pos.step, self.objective.ada
        if ada is not None:
            ada.after_step(step, bs, self.s.dist.all_mean)  # every ada_interval steps: p moves
        self.callbacks.after_step(step, self.nets.named())
        if kill_points.armed("kill_after_step", step):
            kill_points.kill()
        if step % t.log_every == 0:
            self.guard.check("log", self.nets, step)
            values = self.means.pop(self.s.dist)
            for name, v in zip(self.means.names, values, strict=True):
                self.logger.metric(f"train/{name}", v, step)
            if t.batch_schedule:
                self.logger.metric("train/batch_size", bs, step)
            if ada is not None:
                self.logger.metric("train/ada_p", ada.tuner.p, step)
                if ada.tuner.r_t is not None:
                    self.logger.metric("train/ada_rt", ada.tuner.r_t, step)
            self.bar.set_postfix(loss_d=f"{values[0]:.3f}", loss_g=f"{values[1]:.3f}", bs=bs)
        if step % t.checkpoint_every == 0:
            self.guard.check("checkpoint", self.nets, step)
            self.save(False)

    def end_epoch(self, last_step: bool = False) -> None:
        """The fixed-noise grid, FID every ``eval_every`` epochs and at the end of the run (keeping
        the best generator), and a checkpoint. ``last_step``: the run ends mid-epoch (max_steps)."""
        t, pos = self.s.run, self.pos
        self.guard.check("end" if last_step else "epoch end", self.nets, pos.step)
        if not last_step:
            pos.next_epoch()
        last = last_step or pos.epoch >= t.epochs or bool(t.max_steps and pos.step >= t.max_steps)
        gs = sampling_generator(self.s, self.nets)
        gs.eval()
        with torch.no_grad():
            grid = pixels_of(gs, gs(self.z_fixed))
        self.logger.image("fixed_noise.png", grid, pos.step)
        if self.fid_fn is not None and self.s.dist.is_main and t.eval_every and (
                (pos.epoch % t.eval_every == 0 and not last_step) or last):
            fid = float(self.fid_fn(gs))
            self.logger.metric("train/fid", fid, pos.step)
            best = self.best.offer(fid, pos.step, gs)
            self.bar.write(f"epoch {pos.epoch}: FID {fid:.3f}" + (" (best)" if best else ""))
        if self.nets.ema is None:
            self.nets.g.train()
        self.save(last)

    def run(self) -> TrainResult:
        """Epochs until the run's length (or the callbacks stop it); the models at the end."""
        t, pos, nets = self.s.run, self.pos, self.nets
        pos.started = time.perf_counter()
        nets.g.train()
        for d in nets.ds:
            d.train()
        try:
            while pos.epoch < t.epochs and not (t.max_steps and pos.step >= t.max_steps):
                why = self.run_epoch()
                if why == "stop":
                    break
                self.end_epoch(last_step=why == "max_steps")
        finally:
            self.data.close()
        self.bar.close()
        self.guard.check("end", nets, pos.step)
        return self.result()

    def result(self) -> TrainResult:
        """The models in eval mode, and what the run did."""
        nets, pos, best = self.nets, self.pos, self.best
        if nets.e is not None:
            nets.e.eval()
        out_g = sampling_generator(self.s, nets).eval()
        return TrainResult(out_g, [d.eval() for d in nets.ds], self.s.run.arch, pos.step, pos.epoch, pos.wall_s(),
                           pos.images_seen, pos.resumed_from, best.weights, best.fid, best.step, nets.e,
                           nets.g.eval() if nets.ema is not None else None,
                           None if self.objective.ada is None else
                           {"p": self.objective.ada.tuner.p, "r_t": self.objective.ada.tuner.r_t})


def run_steps(t: Run, n: int, dist: DistEnv) -> int:
    """The run's total steps; refuses batch sizes that do not fit the data or the processes."""
    sizes = [t.batch_size, *[b for _, b in t.batch_schedule]]
    if n < max(sizes):
        raise ValueError(f"{n} training images is fewer than the largest batch size {max(sizes)}")
    if (bs := unshared(sizes, dist.world_size)) is not None:
        raise ValueError(f"batch size {bs} is not divisible by the {dist.world_size} processes "
                         f"({SHARED})")
    total = count_steps(n, t.epochs, t.batch_schedule, t.batch_size)
    return min(total, t.max_steps) if t.max_steps else total


def train(
    *,
    run: Run,
    seed: int,
    images: np.ndarray | NpyReader,
    device: torch.device,
    ckpt_dir: str | Path,
    fingerprint: Fingerprint,
    logger: MetricLogger | None = None,
    log: Log = print,
    fid_fn: Callable[[Generator], float] | None = None,
    dist: DistEnv = SINGLE,
    callbacks: Callbacks | None = None,
    start: dict[str, Any] | None = LATEST,
) -> TrainResult:
    """Train (or resume) a DCGAN on uint8 images (N, C, H, W), an array or a file read per
    batch (:class:`~dcgan.data.store.NpyReader`); returns the final models.

    ``fid_fn(G)`` (G in eval mode; the EMA generator when on) is called every
    ``run.eval_every`` epochs and after the last; the generator with the lowest value is
    kept as the best. ``start``: the checkpoint to resume from (:func:`resume_point`'s answer,
    None for a fresh run), or LATEST to ask :func:`resume_point` here.

    ``dist`` (from :func:`distributed.init_from_env`, under torchrun): data-parallel training,
    every rank calling this with the same arguments; batch sizes are global, each rank takes its
    slice of every batch and noise draw, G/D/E run under DDP, and only rank 0 logs, evaluates
    and writes checkpoints.
    """
    n_steps = run_steps(run, len(images), dist)
    logger, log = (logger or NullLogger(), log) if dist.is_main else (NullLogger(), lambda m: None)
    s = Setup(run, seed, device, dist)
    if device.type == "cuda":
        # fixed shapes per batch size: let cuDNN pick the fastest convolution algorithms
        torch.backends.cudnn.benchmark = True
    nets, pos, best, ada = build_nets(s), Position(), BestGenerator(), make_ada(s)
    if start is LATEST:
        start = resume_point(ckpt_dir, fingerprint, dist, device, log)
    if start is not None:
        restore(start, nets, pos, best, ada)
        log(f"resuming from {start.get('path', 'a checkpoint')} at epoch {pos.epoch}, step {pos.step}")
    data = place_data(images, device, log)  # uint8; converted per batch
    objective = make_objective(s, nets, ada)  # after resume: DDP broadcasts rank 0's weights on creation
    names = objective.logged_names()
    loop = Loop(s=s, nets=nets, objective=objective, pos=pos, best=best, data=data, ckpt_dir=ckpt_dir,
                fingerprint=fingerprint, logger=logger, means=RunningMeans(names, device),
                guard=DivergenceGuard(names, device, dist, ckpt_dir),
                bar=progress(total=n_steps, initial=pos.step, desc="train", unit="step", dynamic_ncols=True,
                             mininterval=1.0, disable=not dist.is_main),
                z_fixed=fixed_noise(seed, run.sample_grid, run.arch.latent_dim, run.arch.prior).to(device),
                fid_fn=fid_fn, callbacks=callbacks or Callbacks())
    if run.compile == "graph":
        loop.static = StaticStep(s, nets, objective, train_step)
        if loop.static.blocker:
            log(f"train: compile graph: the step runs on static buffers, not captured ({loop.static.blocker})")
    return loop.run()
