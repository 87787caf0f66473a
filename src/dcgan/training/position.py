"""Where a run stands (:class:`Position`) and the best generator it has seen (:class:`BestGenerator`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class Position:
    """The epoch, the offset into its data order, the global step, and the clock."""

    epoch: int = 0
    offset: int = 0
    step: int = 0
    images_seen: int = 0
    """By this process since it started (not carried across a resume)."""
    wall_prev: float = 0.0
    """Seconds spent by the runs this one resumes."""
    resumed_from: int | None = None
    started: float = field(default_factory=time.perf_counter)

    def wall_s(self) -> float:
        return self.wall_prev + (time.perf_counter() - self.started)

    def advance(self, batch_size: int) -> None:
        self.offset += batch_size
        self.step += 1
        self.images_seen += batch_size

    def next_epoch(self) -> None:
        self.epoch += 1
        self.offset = 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "offset": self.offset, "step": self.step, "wall_s": self.wall_s()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.offset, self.step = int(state["epoch"]), int(state["offset"]), int(state["step"])
        self.wall_prev = float(state["wall_s"])
        self.resumed_from = self.step


@dataclass
class BestGenerator:
    """The generator with the lowest in-training FID so far (its weights on the CPU)."""

    fid: float | None = None
    step: int | None = None
    weights: dict[str, torch.Tensor] | None = None

    def offer(self, fid: float, step: int, g: nn.Module) -> bool:
        """Keep ``g`` if ``fid`` is the lowest yet; True when it is."""
        if self.fid is not None and fid >= self.fid:
            return False
        self.fid, self.step = fid, step
        self.weights = {k: v.detach().cpu().clone() for k, v in g.state_dict().items()}
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"g_best": self.weights, "best_fid": self.fid, "best_step": self.step} if self.weights else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "g_best" in state:
            self.weights = {k: v.cpu() for k, v in state["g_best"].items()}
            self.fid, self.step = float(state["best_fid"]), int(state["best_step"])
