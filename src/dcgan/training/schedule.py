"""Mini-batch size that grows with the step and the matching learning rate (auto sizing:
:mod:`dcgan.training.autobatch`).

The lr rule: lr(bs) = lr * (bs / base) ** k with k = 1 (linear, Goyal et al. 2017), 0.5 (sqrt,
the rule for Adam-like optimisers from Malladi et al. 2022), or 0 (none); base is the first
scheduled batch size.
"""

from __future__ import annotations

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


SHARED = "batch sizes are global: each of the processes takes batch_size / processes"


def unshared(sizes: list[int], processes: int) -> int | None:
    """The first batch size that ``processes`` cannot share equally (None: each can): batch
    sizes are global, and every process takes the same share of each batch."""
    return next((bs for bs in sizes if bs % processes), None)
