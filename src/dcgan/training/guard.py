"""Watching a run without slowing it: running means of the logged numbers and the divergence
guard, both kept on the device and read only at log steps, checkpoints and epoch ends."""

from __future__ import annotations

from pathlib import Path

import torch

from dcgan.core.errors import UserError
from dcgan.training import checkpoint as ckpt
from dcgan.training.distributed import DistEnv
from dcgan.training.nets import Nets


class TrainingDiverged(UserError):
    """A loss or weight became NaN/inf; the last good checkpoint is left as it was."""


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

    def check(self, where: str, nets: Nets, step: int) -> None:
        """Raise :class:`TrainingDiverged` if a loss since the start or a weight is non-finite."""
        bad_step = int(self.dist.all_max(self.first_bad))  # the one host sync
        if bad_step >= 0:
            values = ", ".join(f"{k}={v:.4g}" for k, v in
                               zip(self.names, self.bad_losses.tolist(), strict=True))
            raise TrainingDiverged(f"training diverged at step {bad_step}: {values}. {self._kept()}")
        named = [("G", nets.g), *((f"D{k}" if len(nets.ds) > 1 else "D", d) for k, d in enumerate(nets.ds)),
                 ("E", nets.e)]
        for net_name, net in named:
            # one host sync per network, not one per parameter tensor
            if net is not None and self.dist.any(not bool(torch.stack(
                    [torch.isfinite(t).all() for t in net.parameters()]).all()), self.device):
                raise TrainingDiverged(f"training diverged: {net_name} has non-finite weights after "
                                       f"step {step} ({where}). {self._kept()}")

    def _kept(self) -> str:
        last = ckpt.list_checkpoints(self.ckpt_dir)
        hint = "Lower train.lr or add a penalty (train.r1_gamma, train.gp_lambda)"
        return (f"The last good checkpoint {last[0]} is left as it was. {hint}; changed params "
                "train from scratch." if last else f"No checkpoint was written yet. {hint}.")
