"""Exponential moving average of the generator's weights.

Parameters average as ema = decay * ema + (1 - decay) * p; buffers (BatchNorm running mean
and variance) are copied, since averaging statistics of different weights means nothing.
Copied statistics belong to the raw weights, not the averaged ones, and early in training
the two differ a lot; :meth:`EMA.recalibrated` therefore recomputes the BatchNorm statistics
of the averaged generator on seeded noise before it is used to sample.

With a ramp-up (stylegan2-ada's ``ema_rampup``), the average's half-life in images is at most
``rampup`` times the images seen so far, so early weights are forgotten as fast as training
moves: a fixed decay of 0.999 at batch 64 has a half-life of 44k images and still holds ~40% of
the initial weights after 880 steps. The step's decay is then a device tensor that the loop
sets before each step (:meth:`EMA.set_images_seen`), so a captured step reads it too.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def ramped_decay(decay: float, rampup: float, images_seen: int, batch_size: int) -> float:
    """The step's decay: ``decay``, or with ``rampup`` > 0 the decay whose half-life is at most
    ``rampup * images_seen`` images (stylegan2-ada: beta = 0.5 ** (batch / min(nimg_ema, nimg *
    rampup))); 0 at the first step (the average starts as a copy)."""
    if rampup <= 0:
        return decay
    half_life = batch_size * math.log(0.5) / math.log(decay)  # images, at the full decay
    half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch_size / half_life) if half_life > 0 else 0.0


class EMA:
    def __init__(self, model: nn.Module, decay: float, rampup: float = 0.0):
        self.decay, self.rampup = decay, rampup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        # the ramped step's 1 - decay, on the device (filled before each step, read by the update)
        self.weight = torch.zeros((), device=next(self.model.parameters()).device) if rampup > 0 else None

    def set_images_seen(self, images_seen: int, batch_size: int) -> None:
        """Before each step: the ramped decay for a step that starts after ``images_seen`` images."""
        if self.weight is not None:
            self.weight.fill_(1.0 - ramped_decay(self.decay, self.rampup, images_seen, batch_size))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = list(self.model.parameters())
        if self.weight is None:
            torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1.0 - self.decay)
        else:
            for e, p in zip(ema_p, model.parameters(), strict=True):
                e.lerp_(p.detach(), self.weight)
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
