"""Mini-batch size that grows with the step, the matching learning rate, and auto sizing.

The lr rule: lr(bs) = lr * (bs / base) ** k with k = 1 (linear, Goyal et al. 2017), 0.5 (sqrt,
the rule for Adam-like optimisers from Malladi et al. 2022), or 0 (none); base is the first
scheduled batch size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

EXPONENT = {"none": 0.0, "linear": 1.0, "sqrt": 0.5}


def batch_size_at(step: int, schedule: tuple[tuple[int, int], ...], default: int) -> int:
    bs = default
    for start, size in schedule:
        if step >= start:
            bs = size
    return bs


def images_before(step: int, schedule: tuple[tuple[int, int], ...], default: int) -> int:
    """Images the run has trained on before global step ``step`` (the same after a resume)."""
    if not schedule:
        return step * default
    total = 0
    for i, (start, size) in enumerate(schedule):
        end = schedule[i + 1][0] if i + 1 < len(schedule) else step
        total += max(0, min(end, step) - start) * size
    return total


def lr_for(bs: int, base_bs: int, lr: float, rule: str) -> float:
    return lr * (bs / base_bs) ** EXPONENT[rule]


def count_steps(n: int, epochs: int, schedule: tuple[tuple[int, int], ...], default: int) -> int:
    """Total steps of a run: each epoch takes full batches until the next would not fit."""
    step = 0
    last_change = schedule[-1][0] if schedule else 0
    for epoch in range(epochs):
        if step >= last_change:  # the batch size is fixed from here on: the rest in closed form
            return step + (epochs - epoch) * (n // batch_size_at(step, schedule, default))
        offset = 0
        while True:
            bs = batch_size_at(step, schedule, default)
            if offset + bs > n:
                break
            offset += bs
            step += 1
    return step


def largest_fitting(try_step: Callable[[int], None], start: int = 16, cap: int = 4096,
                    cleanup: Callable[[], None] = lambda: None) -> int:
    """Double the batch size from ``start`` until ``try_step`` raises OutOfMemoryError or
    ``cap`` is passed; the largest size that ran (0 if none did)."""
    fits, bs = 0, start
    while bs <= cap:
        try:
            try_step(bs)
            fits = bs
            bs *= 2
        except torch.OutOfMemoryError:
            break
        finally:
            cleanup()
    return fits


def with_margin(fits: int, margin: float = 0.8, start: int = 16) -> int:
    """A safety margin below the largest fitting size, rounded down to a multiple of 8."""
    return max(start, int(fits * margin) // 8 * 8)


def probe_batch_size(try_step: Callable[[int], None], device: torch.device, start: int = 16,
                     cap: int = 4096, margin: float = 0.8, log=print) -> int:
    """train.batch_size auto: the largest batch whose training step fits the accelerator's
    memory, times ``margin``. On the CPU there is no accelerator memory to fill: 64."""
    if device.type != "cuda":
        log("train.batch_size auto: no accelerator memory to probe on the CPU; using 64")
        return 64

    def step(bs: int) -> None:
        try_step(bs)
        torch.cuda.synchronize(device)

    fits = largest_fitting(step, start, cap, torch.cuda.empty_cache)
    if not fits:
        raise RuntimeError(f"even a batch of {start} does not fit on {device}")
    chosen = with_margin(fits, margin, start)
    log(f"train.batch_size auto: {fits} fits on {device}; using {chosen} ({margin:.0%} margin)")
    return chosen
