"""The DCGAN training loop: in-memory data, derived seeds, exact resume.

Every random draw is a pure function of (seed, purpose, epoch or step): the data order of
epoch ``e`` comes from ``derive_seed(seed, "order", e)`` and the noise, penalty interpolation
and DiffAugment draws of step ``s`` from ``derive_seed(seed, purpose, s)``. A checkpoint
therefore needs only weights, optimizer/EMA state and the position (epoch, offset, step) for
a resumed run to replay exactly what an uninterrupted run does, whatever the batch schedule.

Techniques (each a switch in params.yaml ``train``): latent prior, BCE/hinge/WGAN losses,
R1 and WGAN-GP penalties with lazy regularisation, per-network normalisation and spectral
norm (in the models), DiffAugment, EMA of G, an encoder with reconstruction and latent-cycle
losses, and a batch-size schedule with lr scaling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dcgan import faults, losses
from dcgan.config import TrainParams
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
from dcgan.runtime import generator_for
from dcgan.training import checkpoint as ckpt
from dcgan.training import distributed
from dcgan.training.diffaug import diff_augment
from dcgan.training.distributed import SINGLE, DistEnv
from dcgan.training.ema import EMA
from dcgan.training.schedule import batch_size_at, count_steps, lr_for


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


def _make_opt(params, p: TrainParams) -> torch.optim.Adam:
    # foreach: one fused kernel launch per param group instead of one per tensor
    return torch.optim.Adam(params, lr=p.lr, betas=(p.beta1, p.beta2), foreach=True)


def dataset_fits(nbytes: int, free_bytes: int, fraction: float = 0.25) -> bool:
    """Whether a dataset of ``nbytes`` goes on an accelerator with ``free_bytes`` free: at most
    ``fraction`` of it, so that the networks, activations and cuDNN workspaces keep the rest."""
    return nbytes <= fraction * free_bytes


def place_data(images: np.ndarray, device: torch.device, log: Callable[[str], None] = print) -> torch.Tensor:
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


def gan_config(p: TrainParams, image_size: int, channels: int) -> GANConfig:
    return GANConfig(image_size, channels, p.latent_dim, p.g_width, p.d_width, p.g_norm, p.d_norm,
                     p.d_spectral, p.prior, p.encoder)


def train(
    p: TrainParams,
    cfg: GANConfig,
    seed: int,
    images: np.ndarray,
    device: torch.device,
    ckpt_dir: str | Path,
    fingerprint: str,
    logger: MetricLogger | None = None,
    log: Callable[[str], None] = print,
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
    logger = logger or NullLogger()
    n = len(images)
    default_bs = batch_size if batch_size is not None else p.batch_size
    schedule = p.batch_schedule
    base_bs = schedule[0][1] if schedule else default_bs
    largest = max([default_bs, *[b for _, b in schedule]])
    if n < largest:
        raise ValueError(f"{n} training images is fewer than the largest batch size {largest}")
    total_steps = count_steps(n, p.epochs, schedule, default_bs)
    for bs_ in {default_bs, *[b for _, b in schedule]}:
        if bs_ % dist.world_size:
            raise UserError(f"batch size {bs_} is not divisible by the {dist.world_size} processes "
                            "(batch sizes are global: each process takes batch_size / nproc)")
    if not dist.is_main:
        logger, log = NullLogger(), (lambda m: None)

    if p.precision == "fp16" and device.type != "cuda":
        raise UserError(f"train.precision fp16 needs a CUDA device (loss scaling), not {device.type}; "
                        "use bf16 or fp32")
    amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[p.precision]
    fmt = torch.channels_last if p.channels_last else torch.contiguous_format

    def autocast():
        """Forward passes in reduced precision; losses and penalties are computed outside, in fp32."""
        return torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)

    if device.type == "cuda":
        # fixed shapes per batch size: let cuDNN pick the fastest convolution algorithms
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)  # init weights; everything after draws from derived generators
    g, d = build(cfg)
    g.to(device, memory_format=fmt)
    d.to(device, memory_format=fmt)
    e = build_encoder(cfg).to(device, memory_format=fmt) if p.encoder else None
    if dist.enabled and p.sync_bn:  # before the optimizers: conversion may make new parameters
        g, d = distributed.convert_sync_bn(g, device), distributed.convert_sync_bn(d, device)
        e = distributed.convert_sync_bn(e, device) if e is not None else None
    # fp16 only: scale losses so small gradients survive; skips steps whose gradients overflow
    scaler = torch.amp.GradScaler(device.type, enabled=p.precision == "fp16")
    opt_g = _make_opt(g.parameters(), p)
    opt_d = _make_opt(d.parameters(), p)
    opt_e = _make_opt(e.parameters(), p) if e is not None else None
    ema = EMA(g, p.ema_decay) if p.ema_decay > 0 else None

    epoch, offset, step, wall_prev, resumed = 0, 0, 0, 0.0, None
    best_fid, best_step, g_best = None, None, None
    state, path = ckpt.load_latest(ckpt_dir, map_location=device, warn=log)
    dist.barrier()  # every rank has read the checkpoint before rank 0 may clear it
    if state is not None and state["fingerprint"] != fingerprint:
        log(f"checkpoint {path} is from a run with other training params, data or code; "
            f"training from scratch")
        if dist.is_main:
            ckpt.clear(ckpt_dir)
        state = None
    if state is not None and int(state.get("world_size", 1)) != dist.world_size:
        raise UserError(f"checkpoint {path} was saved by {int(state.get('world_size', 1))} processes "
                        f"and this run has {dist.world_size}: resume with train.nproc: "
                        f"{int(state.get('world_size', 1))} (the checkpoint is left as it is)")
    if state is not None:
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        if e is not None:
            e.load_state_dict(state["e"])
            opt_e.load_state_dict(state["opt_e"])
        if ema is not None:
            ema.load_state_dict(state["g_ema"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        epoch, offset, step = int(state["epoch"]), int(state["offset"]), int(state["step"])
        wall_prev = float(state["wall_s"])
        resumed = step
        if "g_best" in state:
            g_best = {k: v.cpu() for k, v in state["g_best"].items()}
            best_fid, best_step = float(state["best_fid"]), int(state["best_step"])
        log(f"resuming from {path} at epoch {epoch}, step {step}")

    data = place_data(images, device, log)  # uint8; converted per batch
    z_fixed = fixed_noise(seed, p.sample_grid, cfg.latent_dim, cfg.prior).to(device)
    aug = p.diffaug

    def snapshot(finished: bool) -> dict[str, Any]:
        return {
            "fingerprint": fingerprint, "world_size": dist.world_size, "epoch": epoch, "offset": offset, "step": step,
            "finished": finished, "wall_s": wall_prev + (time.perf_counter() - t0),
            "g": g.state_dict(), "d": d.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            **({"e": e.state_dict(), "opt_e": opt_e.state_dict()} if e is not None else {}),
            **({"g_ema": ema.state_dict()} if ema is not None else {}),
            **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {}),
            **({"g_best": g_best, "best_fid": best_fid, "best_step": best_step} if g_best else {}),
        }

    def sample_g() -> Generator:
        if ema is None:
            return g
        return ema.recalibrated(lambda i: sample_prior(
            256, cfg.latent_dim, cfg.prior, generator_for(seed, "ema_bn", i)).to(device))

    # Running sums stay on the device; .item() (a host sync) happens only at log steps.
    names = ["loss_d", "loss_g", "d_real", "d_fake"] + (["loss_recon"] if e is not None else [])
    sums = torch.zeros(len(names), device=device)
    # step of the first non-finite loss (-1: none yet), kept on the device: no per-step sync
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    bad_losses = torch.zeros(len(names), device=device)
    since_log = 0

    def check_finite(where: str) -> None:
        """Stop on a non-finite loss (since the last check) or weight, before anything is saved."""
        bad_step = int(dist.all_max(first_bad))  # the one host sync, at log/checkpoint/epoch ends
        if bad_step >= 0:
            values = ", ".join(f"{k}={v:.4g}" for k, v in zip(names, bad_losses.tolist(), strict=True))
            raise TrainingDiverged(f"training diverged at step {bad_step}: {values}. {kept()}")
        for net_name, net in (("G", g), ("D", d), ("E", e)):
            # one host sync per network, not one per parameter tensor
            if net is not None and dist.any(
                    not bool(torch.stack([torch.isfinite(t).all() for t in net.parameters()]).all()), device):
                raise TrainingDiverged(f"training diverged: {net_name} has non-finite weights after "
                                       f"step {step} ({where}). {kept()}")

    def kept() -> str:
        last = ckpt.list_checkpoints(ckpt_dir)
        hint = "Lower train.lr or add a penalty (train.r1_gamma, train.gp_lambda)"
        return (f"The last good checkpoint {last[0]} is left as it was. {hint}; changed params "
                "train from scratch." if last else f"No checkpoint was written yet. {hint}.")

    # What each step calls: the networks themselves, or their torch.compile'd wrappers (same
    # parameters). Penalties (double backward) and sampling always run the eager modules.
    G, D, E = (compiled(distributed.wrap(m, dist, device), p.compile) for m in (g, d, e))
    # D in the G step: no gradients for D's weights there, so no DDP gradient sync either
    D_frozen = compiled(d, p.compile) if dist.enabled else D
    mark_step = (torch.compiler.cudagraph_mark_step_begin
                 if p.compile == "reduce-overhead" and device.type == "cuda" else lambda: None)

    images_seen = 0
    t0 = time.perf_counter()
    bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
               mininterval=1.0, disable=True if not dist.is_main else False)
    g.train()
    d.train()
    stopped_early = False
    while epoch < p.epochs and not stopped_early:
        order = epoch_order(seed, epoch, n).to(device)
        while True:
            bs = batch_size_at(step, schedule, default_bs)
            if offset + bs > n:  # drop the last partial batch: every step sees a full batch
                break
            lr = lr_for(bs, base_bs, p.lr, p.lr_scaling)
            for opt in (opt_g, opt_d, opt_e):
                if opt is not None:
                    for group in opt.param_groups:
                        group["lr"] = lr
            idx = dist.shard(order[offset:offset + bs])  # this rank's slice of the global batch
            mark_step()  # CUDA graphs: outputs of the previous step are no longer read
            real = data[idx.to(data.device)].to(device, non_blocking=True)
            real = real.float().div_(127.5).sub_(1.0)  # (bs, C, H, W) in [-1, 1]
            real = real.contiguous(memory_format=fmt)
            z = dist.shard(sample_prior(bs, cfg.latent_dim, cfg.prior, generator_for(seed, "z", step))).to(device)
            aug_gen = (None if not aug else generator_for(seed, "diffaug", step) if not dist.enabled
                       else generator_for(seed, "diffaug", step, "rank", dist.rank))

            def T(x: torch.Tensor, gen=aug_gen) -> torch.Tensor:  # DiffAugment, or identity
                return diff_augment(x, aug, gen) if aug else x

            # D step (logits cast back to fp32: the losses never run in reduced precision)
            with autocast():
                fake = G(z)
                out_real = D(T(real)).float()
                out_fake = D(T(fake.detach())).float()
            loss_d = losses.d_loss(p.loss, out_real, out_fake)
            if step % p.reg_every == 0:  # lazy regularisation: every reg_every steps, scaled up
                if p.r1_gamma > 0:
                    loss_d = loss_d + p.r1_gamma / 2 * p.reg_every * losses.r1_penalty(d, T(real))
                if p.gp_lambda > 0:
                    alpha = dist.shard(torch.rand(bs, 1, 1, 1, generator=generator_for(seed, "gp", step)))
                    loss_d = loss_d + p.gp_lambda * p.reg_every * losses.gradient_penalty(
                        d, T(real), T(fake.float()), alpha.to(device))
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(loss_d).backward()
            scaler.step(opt_d)

            # G step (and E: reconstruction updates E and G, the latent cycle E only)
            d.requires_grad_(False)
            with autocast():
                out_g = D_frozen(T(fake)).float()
                if e is not None:
                    recon = G(E(real)).float()
                    z_cycle = E(fake.detach()).float() if p.latent_cycle_weight > 0 else None
            loss_g = losses.g_loss(p.loss, out_g)
            total_g = loss_g
            if e is not None:
                loss_recon = losses.reconstruction_loss(p.recon_loss, recon, real)
                total_g = total_g + p.recon_weight * loss_recon
                if z_cycle is not None:
                    total_g = total_g + p.latent_cycle_weight * losses.reconstruction_loss(
                        p.recon_loss, z_cycle, z)
                opt_e.zero_grad(set_to_none=True)
            opt_g.zero_grad(set_to_none=True)
            scaler.scale(total_g).backward()
            scaler.step(opt_g)
            if e is not None:
                scaler.step(opt_e)
            scaler.update()
            d.requires_grad_(True)
            if ema is not None:
                ema.update(g)

            with torch.no_grad():
                if p.loss == "bce":
                    dr, df = torch.sigmoid(out_real).mean(), torch.sigmoid(out_fake).mean()
                else:  # hinge/WGAN logits are not probabilities: log the raw means
                    dr, df = out_real.mean(), out_fake.mean()
                row = [loss_d.detach(), loss_g.detach(), dr, df]
                if e is not None:
                    row.append(loss_recon.detach())
                row = torch.stack(row)
                sums += row
                newly_bad = (first_bad < 0) & ~torch.isfinite(row).all()
                first_bad.copy_(torch.where(newly_bad, torch.full_like(first_bad, step + 1), first_bad))
                bad_losses.copy_(torch.where(newly_bad, row, bad_losses))
            since_log += 1
            offset += bs
            step += 1
            images_seen += bs
            bar.update(1)

            if on_step is not None:
                on_step(step, {"g": g, "d": d, "e": e})
            if faults.armed("kill_after_step", step):
                faults.kill()
            if step % p.log_every == 0:
                check_finite("log")
                values = (dist.all_mean(sums) / since_log).tolist()
                for name, v in zip(names, values, strict=True):
                    logger.metric(f"train/{name}", v, step)
                if schedule:
                    logger.metric("train/batch_size", bs, step)
                bar.set_postfix(loss_d=f"{values[0]:.3f}", loss_g=f"{values[1]:.3f}", bs=bs)
                sums.zero_()
                since_log = 0
            if step % p.checkpoint_every == 0:
                check_finite("checkpoint")
                if dist.is_main:
                    ckpt.save_checkpoint(ckpt_dir, step, snapshot(False))
            if stop_after_steps is not None and step >= stop_after_steps:
                stopped_early = True
                break
        if stopped_early:
            break
        check_finite("epoch end")
        epoch += 1
        offset = 0
        gs = sample_g()
        gs.eval()
        with torch.no_grad():
            grid = gs(z_fixed)
        logger.image("fixed_noise.png", grid, step)
        if fid_fn is not None and dist.is_main and p.eval_every and (epoch % p.eval_every == 0 or epoch == p.epochs):
            fid = float(fid_fn(gs))
            logger.metric("train/fid", fid, step)
            bar.write(f"epoch {epoch}: FID {fid:.3f}" + (" (best)" if best_fid is None or fid < best_fid else ""))
            if best_fid is None or fid < best_fid:
                best_fid, best_step = fid, step
                g_best = {k: v.detach().cpu().clone() for k, v in gs.state_dict().items()}
        if ema is None:
            g.train()
        if dist.is_main:
            ckpt.save_checkpoint(ckpt_dir, step, snapshot(epoch >= p.epochs))
    bar.close()
    check_finite("end")
    wall = wall_prev + (time.perf_counter() - t0)
    if e is not None:
        e.eval()
    out_g = sample_g().eval()
    return TrainResult(out_g, d.eval(), cfg, step, epoch, wall, images_seen, resumed,
                       g_best, best_fid, best_step, e, g.eval() if ema is not None else None)
