"""DiffAugment against the reference implementation (mit-han-lab/data-efficient-gans,
tests/diffaugment_reference.py, verbatim) on the same random numbers: the reference draws from
torch's global generator, ours from a seeded one; seeded alike, both must give the same images,
policy by policy and chained as train.diffaug chains them."""

from __future__ import annotations

import pytest
import torch

from dcgan.training.diffaug import diff_augment
from dcgan.training.names import DIFFAUG_POLICIES
from tests import diffaugment_reference as ref

# the reference calls torch.meshgrid without indexing= (it means "ij", today's default)
pytestmark = pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning")


def _ours(x: torch.Tensor, policy: tuple[str, ...], seed: int) -> torch.Tensor:
    return diff_augment(x, policy, torch.Generator().manual_seed(seed))


def _reference(x: torch.Tensor, policy: tuple[str, ...], seed: int) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ref.DiffAugment(x, ",".join(policy))


@pytest.mark.parametrize("policy", [(name,) for name in DIFFAUG_POLICIES] + [DIFFAUG_POLICIES])
@pytest.mark.parametrize("shape", [(16, 3, 32, 32), (9, 1, 16, 16), (4, 3, 20, 12)])
def test_same_draws_give_the_reference_images(policy, shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(7)) * 2 - 1  # network space [-1, 1]
    for seed in range(3):
        torch.testing.assert_close(_ours(x, policy, seed), _reference(x, policy, seed), rtol=0, atol=1e-6)


def test_channels_last_input_gives_the_same_images():
    """The training step feeds channels_last batches (train.channels_last)."""
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    policy = ("color", "translation", "cutout")
    torch.testing.assert_close(_ours(x.to(memory_format=torch.channels_last), policy, 5),
                               _reference(x, policy, 5), rtol=0, atol=1e-6)


def test_the_opposite_shift_is_told_apart():
    """The comparison can fail: shifting the other way (this module before issue 29: the same
    distribution, other images from the same draws) is the mirror of our shift of the mirrored
    images, and that must not match the reference."""
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    mirrored = _ours(x.flip(2, 3), ("translation",), 0).flip(2, 3)
    assert not torch.allclose(mirrored, _reference(x, ("translation",), 0))
