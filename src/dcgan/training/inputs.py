"""What one step is fed, made the same way by the eager loop and the static (captured) step: the
real images in the network space, with the noise and the draws (:mod:`dcgan.training.draws`)."""

from __future__ import annotations

import torch

from dcgan.core.pixels import to_unit
from dcgan.networks.gan import to_network
from dcgan.training.batches import Batch
from dcgan.training.draws import DrawBank
from dcgan.training.settings import Setup


def batch_of(s: Setup, raw: torch.Tensor, z: torch.Tensor, draws: DrawBank, step: int, bs: int) -> Batch:
    """The step's Batch from this rank's uint8 images ``raw`` (on the device) and noise ``z``:
    the images in [-1, 1], then in the network space (meanstd: (x - mean) / std), in the run's
    memory format."""
    real = to_network(to_unit(raw), s.run.arch).contiguous(memory_format=s.memory_format)
    return Batch(step, bs, real, z, draws, s.run.objective.diffaug)
