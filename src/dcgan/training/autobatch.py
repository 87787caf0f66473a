"""``train.batch_size: auto``: the largest batch whose real training step fits the accelerator.

What a trial counts. It runs this run's own step (:func:`run_trial`): the networks from
:func:`~dcgan.training.nets.build_nets` (every discriminator, the encoder, Adam's state, the EMA
copy), the run's :class:`~dcgan.training.objective.GANObjective` (lazy R1's second backward pass
included: both kinds of step run), and where the step is captured
(:class:`~dcgan.training.graphed.StaticStep` on CUDA) its static buffers, the warm-up, the capture
and its private memory pool. The measurement is the caching allocator's peak *reserved* memory,
so the allocator's cache and the graph's pool are in it. The training set, when it will live on
the GPU (:func:`~dcgan.training.batches.dataset_fits`), is taken off the budget first.

What is left to the margin: the in-training FID (the extractor and a batch of samples), the
fixed-noise grid, and fragmentation over a long run. ``MARGIN`` is not a measured number yet
(the CUDA test ``test_auto_batch_size_trains_within_the_memory_it_was_given`` measures what a
whole run takes against the budget; benchmarks/gpu_check.sh runs it).

The search (:func:`largest_within`) doubles the batch while the measured peak stays within the
budget and a straight line through the last two measurements says the double would too; then it
measures the largest multiple of 8 that the line puts within the budget, stepping down by an
eighth until one does. No trial is started that the line says will not fit, so a capture rarely
meets an out-of-memory error (one that does is caught like any other).
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import torch

from dcgan.training.batches import TensorSource, dataset_fits
from dcgan.training.graphed import StaticStep
from dcgan.training.loop import make_batch, make_objective, train_step
from dcgan.training.nets import build_nets
from dcgan.training.settings import Setup

MARGIN = 0.9
"""The share of (free memory - the training set) that the measured step may fill."""
CPU_BATCH = 64
"""On the CPU there is no accelerator memory to fill."""

Peak = Callable[[int], int]
"""batch size -> the peak bytes of a trial at that size (raises torch.OutOfMemoryError)."""


def trial_steps(s: Setup, runs: int = 4) -> list[int]:
    """Step numbers that give every kind of step (regularising or not) ``runs`` runs: on CUDA
    with the captured step that is the first (eager), the warm-up, the capture and a replay."""
    o = s.run.objective
    kinds = {o.regularises(k) for k in range(2 * o.reg_every + 1)}
    seen = dict.fromkeys(kinds, 0)
    steps = []
    step = 0
    while min(seen.values()) < runs:
        kind = o.regularises(step)
        if seen[kind] < runs:
            seen[kind] += 1
            steps.append(step)
        step += 1
    return steps


def run_trial(s: Setup) -> None:
    """A few steps of this run's own step at ``s.run.batch_size`` on random images (see the
    module's doc for what that counts)."""
    bs = s.run.batch_size
    shape = (bs, s.run.arch.channels, s.run.arch.image_size, s.run.arch.image_size)
    data = TensorSource(torch.randint(0, 256, shape, dtype=torch.uint8, device=s.device))
    nets = build_nets(s)
    objective = make_objective(s, nets)
    static = StaticStep(s, nets, objective, train_step) if s.run.compile == "graph" else None
    order = torch.arange(bs, device=s.device)
    for step in trial_steps(s):
        if static is None:
            train_step(nets, objective, make_batch(s, data, order, 0, step, bs))
        else:
            static(data.data, s.noise(step, bs), step, bs)


def cuda_peak(setup_at: Callable[[int], Setup]) -> Peak:
    """A trial's peak reserved bytes on CUDA, the memory given back after it."""
    def peak(bs: int) -> int:
        s = setup_at(bs)
        torch.backends.cudnn.benchmark = True  # as the run will (its algorithms, their workspaces)
        try:
            torch.cuda.synchronize(s.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(s.device)
            run_trial(s)
            torch.cuda.synchronize(s.device)
            return torch.cuda.max_memory_reserved(s.device)
        finally:
            gc.collect()  # the trial's graphs before their pool
            torch.cuda.empty_cache()
    return peak


def _line(measured: dict[int, int]) -> tuple[int, float] | None:
    """(batch, slope) of the line through the two largest measured sizes (None: no rise)."""
    if len(measured) < 2:
        return None
    (b0, m0), (b1, m1) = sorted(measured.items())[-2:]
    slope = (m1 - m0) / (b1 - b0)
    return (b0, slope) if slope > 0 else None


def largest_within(peak: Peak, budget: int, start: int = 16, cap: int = 4096) -> tuple[int, dict[int, int]]:
    """(the largest batch, a multiple of 8 from ``start`` to ``cap``, whose measured peak is
    within ``budget``: 0 if not even ``start``; every size measured -> its peak)."""
    measured: dict[int, int] = {}

    def fits(bs: int) -> bool:
        try:
            measured[bs] = peak(bs)
        except torch.OutOfMemoryError:
            measured[bs] = budget + 1
        return measured[bs] <= budget

    def predicted(bs: int) -> float:
        line = _line(measured)
        return 0.0 if line is None else measured[line[0]] + line[1] * (bs - line[0])

    bs, best = start, 0
    while bs <= cap and fits(bs):
        best = bs
        if predicted(2 * bs) > budget:
            break
        bs *= 2
    line = _line(measured)
    if best == 0 or line is None:
        return best, measured
    guess = min(cap, int(line[0] + (budget - measured[line[0]]) / line[1]) // 8 * 8)
    while guess > best and guess not in measured:
        if fits(guess):
            return guess, measured
        guess = guess * 7 // 8 // 8 * 8
    return best, measured


def auto_batch_size(setup_at: Callable[[int], Setup], device: torch.device, data_bytes: int,
                    log: Callable[[str], None] = print, peak: Peak | None = None,
                    free_bytes: int | None = None, margin: float = MARGIN) -> int:
    """train.batch_size auto for one process: ``setup_at(bs)`` is the run's Setup at batch
    ``bs``; ``data_bytes`` the training set's size (taken off the budget when it will be placed
    on the GPU). ``peak``/``free_bytes``: stand-ins for the CUDA measurements (tests)."""
    if device.type != "cuda" and peak is None:
        log(f"train.batch_size auto: no accelerator memory to probe on the {device.type.upper()}; using {CPU_BATCH}")
        return CPU_BATCH
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    reserve = data_bytes if dataset_fits(data_bytes, free_bytes) else 0
    budget = int(margin * (free_bytes - reserve))
    best, measured = largest_within(peak or cuda_peak(setup_at), budget)
    if not best:
        raise RuntimeError(f"even a batch of 16 does not fit on {device}: its step took "
                           f"{min(measured.values()) / 2**30:.2f} GiB of a {budget / 2**30:.2f} GiB budget")
    log(f"train.batch_size auto: {best} (its step's peak {measured[best] / 2**30:.2f} GiB of a "
        f"{budget / 2**30:.2f} GiB budget: {margin:.0%} of {free_bytes / 2**30:.1f} GiB free"
        + (f" less the training set's {reserve / 2**30:.2f} GiB" if reserve else "")
        + f"; measured {', '.join(str(b) for b in sorted(measured))})")
    return best
