"""What one step is fed, made the same way by the eager loop and the static (captured) step:
the real images in the network space, the noise, and the step's draw generators."""

from __future__ import annotations

from collections.abc import Callable

import torch

from dcgan.base.pixels import to_unit
from dcgan.base.seeding import generator_for
from dcgan.networks.gan import sample_prior, to_network
from dcgan.training.draws import Key
from dcgan.training.objective import Batch, DrawBank, step_generators
from dcgan.training.settings import Setup


def draw_noise(s: Setup, step: int, bs: int) -> torch.Tensor:
    """This rank's noise for ``step``, on the CPU."""
    return s.dist.shard(sample_prior(bs, s.cfg.latent_dim, s.cfg.prior, generator_for(s.seed, "z", step)))


def draw_generators(s: Setup, step: int) -> Callable[[Key], torch.Generator]:
    """The step's seeded generator per (purpose, discriminator); DiffAugment's per rank."""
    return step_generators(s.seed, step, () if not s.dist.enabled else ("rank", s.dist.rank))


def batch_of(s: Setup, raw: torch.Tensor, z: torch.Tensor, draws: DrawBank, step: int, bs: int) -> Batch:
    """The step's Batch from this rank's uint8 images ``raw`` (on the device) and noise ``z``:
    the images in [-1, 1], then in the network space (meanstd: (x - mean) / std), in the run's
    memory format."""
    real = to_network(to_unit(raw), s.cfg).contiguous(memory_format=s.memory_format)
    return Batch(step, bs, real, z, draws, s.settings.objective.diffaug)
