"""The DCGAN training loop: in-memory data, derived seeds, exact resume.

Every random draw is a pure function of (seed, purpose, epoch or step): the data order of
epoch ``e`` comes from ``derive_seed(seed, "order", e)`` and the noise of step ``s`` from
``derive_seed(seed, "z", s)``. A checkpoint therefore needs only weights, optimizer state and
the position (epoch, batch, step) for a resumed run to replay exactly what an uninterrupted
run does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dcgan.config import TrainParams
from dcgan.models import Discriminator, GANConfig, Generator, build
from dcgan.runtime import generator_for
from dcgan.training import checkpoint as ckpt


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


def fixed_noise(seed: int, n: int, latent_dim: int) -> torch.Tensor:
    """The noise behind the per-epoch sample grid: the same for every epoch and run."""
    return torch.randn(n, latent_dim, generator=generator_for(seed, "fixed_noise"))


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=generator_for(seed, "order", epoch))


def _make_opt(params, p: TrainParams, device: torch.device) -> torch.optim.Adam:
    # foreach: one fused kernel launch per param group instead of one per tensor
    return torch.optim.Adam(params, lr=p.lr, betas=(p.beta1, p.beta2), foreach=True)


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
) -> TrainResult:
    """Train (or resume) a DCGAN on uint8 images (N, C, H, W); returns the final models.

    ``fid_fn(G)`` (G in eval mode) is called every ``p.eval_every`` epochs and after the last;
    the generator with the lowest value is kept as the best. ``stop_after_steps`` ends the run
    early after that global step (tests of resume use it).
    """
    logger = logger or NullLogger()
    n = len(images)
    bs = p.batch_size
    if n < bs:
        raise ValueError(f"{n} training images is fewer than train.batch_size={bs}")
    steps_per_epoch = n // bs  # drop the last partial batch: every step sees a full batch
    total_steps = steps_per_epoch * p.epochs

    torch.manual_seed(seed)  # init weights; everything after draws from derived generators
    g, d = build(cfg)
    g.to(device)
    d.to(device)
    opt_g = _make_opt(g.parameters(), p, device)
    opt_d = _make_opt(d.parameters(), p, device)

    epoch, batch, step, wall_prev, resumed = 0, 0, 0, 0.0, None
    best_fid, best_step, g_best = None, None, None
    state, path = ckpt.load_latest(ckpt_dir, map_location=device, warn=log)
    if state is not None and state["fingerprint"] != fingerprint:
        log(f"checkpoint {path} is from a run with other training params, data or code; "
            f"training from scratch")
        ckpt.clear(ckpt_dir)
        state = None
    if state is not None:
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        epoch, batch, step = int(state["epoch"]), int(state["batch"]), int(state["step"])
        wall_prev = float(state["wall_s"])
        resumed = step
        if "g_best" in state:
            g_best = {k: v.cpu() for k, v in state["g_best"].items()}
            best_fid, best_step = float(state["best_fid"]), int(state["best_step"])
        log(f"resuming from {path} at epoch {epoch}, step {step}")

    data = torch.from_numpy(images).to(device)  # uint8 on the device; converted per batch
    z_fixed = fixed_noise(seed, p.sample_grid, cfg.latent_dim).to(device)
    ones = torch.ones(bs, device=device)
    zeros = torch.zeros(bs, device=device)

    def snapshot(finished: bool) -> dict[str, Any]:
        return {
            "fingerprint": fingerprint, "epoch": epoch, "batch": batch, "step": step,
            "finished": finished, "wall_s": wall_prev + (time.perf_counter() - t0),
            "g": g.state_dict(), "d": d.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "config": asdict(cfg),
            **({"g_best": g_best, "best_fid": best_fid, "best_step": best_step} if g_best else {}),
        }

    # Running sums stay on the device; .item() (a host sync) happens only at log steps.
    sums = torch.zeros(4, device=device)
    since_log = 0
    t0 = time.perf_counter()
    start_step = step
    bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
               mininterval=1.0)
    g.train()
    d.train()
    stopped_early = False
    while epoch < p.epochs and not stopped_early:
        order = epoch_order(seed, epoch, n).to(device)
        while batch < steps_per_epoch:
            idx = order[batch * bs:(batch + 1) * bs]
            real = data[idx].float().div_(127.5).sub_(1.0)  # (bs, C, H, W) in [-1, 1]
            z = torch.randn(bs, cfg.latent_dim, generator=generator_for(seed, "z", step)).to(device)

            # D step: maximise log D(x) + log(1 - D(G(z)))
            fake = g(z)
            out_real = d(real)
            out_fake = d(fake.detach())
            loss_d = F.binary_cross_entropy_with_logits(out_real, ones) + \
                F.binary_cross_entropy_with_logits(out_fake, zeros)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # G step, non-saturating: maximise log D(G(z))
            out_g = d(fake)
            loss_g = F.binary_cross_entropy_with_logits(out_g, ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

            with torch.no_grad():
                sums += torch.stack([loss_d.detach(), loss_g.detach(),
                                     torch.sigmoid(out_real).mean(), torch.sigmoid(out_fake).mean()])
            since_log += 1
            batch += 1
            step += 1
            bar.update(1)

            if step % p.log_every == 0:
                ld, lg, dx, dgz = (sums / since_log).tolist()
                for name, v in (("loss_d", ld), ("loss_g", lg), ("d_real", dx), ("d_fake", dgz)):
                    logger.metric(f"train/{name}", v, step)
                bar.set_postfix(loss_d=f"{ld:.3f}", loss_g=f"{lg:.3f}", D_x=f"{dx:.2f}", D_Gz=f"{dgz:.2f}")
                sums.zero_()
                since_log = 0
            if step % p.checkpoint_every == 0 and batch < steps_per_epoch:
                ckpt.save_checkpoint(ckpt_dir, step, snapshot(False))
            if stop_after_steps is not None and step >= stop_after_steps:
                stopped_early = True
                break
        if stopped_early:
            break
        epoch += 1
        batch = 0
        g.eval()
        with torch.no_grad():
            grid = g(z_fixed)
        logger.image("fixed_noise.png", grid, step)
        if fid_fn is not None and p.eval_every and (epoch % p.eval_every == 0 or epoch == p.epochs):
            fid = float(fid_fn(g))
            logger.metric("train/fid", fid, step)
            bar.write(f"epoch {epoch}: FID {fid:.3f}" + (" (best)" if best_fid is None or fid < best_fid else ""))
            if best_fid is None or fid < best_fid:
                best_fid, best_step = fid, step
                g_best = {k: v.detach().cpu().clone() for k, v in g.state_dict().items()}
        g.train()
        ckpt.save_checkpoint(ckpt_dir, step, snapshot(epoch >= p.epochs))
    bar.close()
    wall = wall_prev + (time.perf_counter() - t0)
    return TrainResult(g.eval(), d.eval(), cfg, step, epoch, wall, (step - start_step) * bs, resumed,
                       g_best, best_fid, best_step)
