"""Image grids: the project's own tiling is torchvision's make_grid, pixel for pixel (the stages
draw grids without importing torchvision, which costs a second at every stage's start)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.utils import make_grid

from dcgan.core.images import grid_image, tile


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (2, 1, 8, 8), (7, 3, 8, 6), (10, 1, 4, 4), (64, 3, 16, 16)])
@pytest.mark.parametrize("nrow", [1, 3, 8])
def test_tile_is_make_grid(shape, nrow):
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    theirs = make_grid(torch.from_numpy(x), nrow=nrow, padding=2, pad_value=255).numpy()
    ours = tile(x, nrow, 2)
    assert np.array_equal(ours, theirs[:shape[1]])  # make_grid makes grey images RGB


def test_grid_image_is_square_by_default_and_grey_stays_grey():
    im = grid_image(np.zeros((9, 1, 4, 4), np.uint8))
    assert im.mode == "L" and im.size == (3 * 6 + 2, 3 * 6 + 2)
