"""Exponential moving average of the generator's weights.

Parameters average as ema = decay * ema + (1 - decay) * p; buffers (BatchNorm running mean
and variance) are copied, since averaging statistics of different weights means nothing.
Copied statistics belong to the raw weights, not the averaged ones, and early in training
the two differ a lot; :meth:`EMA.recalibrated` therefore recomputes the BatchNorm statistics
of the averaged generator on seeded noise before it is used to sample.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = list(self.model.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)

    @torch.no_grad()
    def recalibrated(self, sample_z, batches: int = 8) -> nn.Module:
        """The EMA model in eval mode with BatchNorm statistics recomputed from its own
        activations: ``sample_z(i)`` gives the noise of batch i (seeded by the caller)."""
        bns = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if bns:
            momenta = [m.momentum for m in bns]
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
            self.model.train()
            for i in range(batches):
                self.model(sample_z(i))
            for m, mom in zip(bns, momenta, strict=True):
                m.momentum = mom
        return self.model.eval()
