"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout.

Applied to both real and generated images whenever D sees them, in the D and the G step, so
D cannot tell the augmentation apart from the data and gradients flow through it to G.
Randomness comes from the caller's seeded generator (exact resume), drawn on the CPU, or from a
:class:`~dcgan.training.draws.Draws` source (the same numbers, handed out from a device buffer
in a captured step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dcgan.training import names
from dcgan.training.draws import Draws, LiveDraws


def _source(gen: torch.Generator | Draws, x: torch.Tensor) -> Draws:
    return gen if isinstance(gen, Draws) else LiveDraws(gen, x.device)


def _rand(gen: Draws, x: torch.Tensor, *shape: int) -> torch.Tensor:
    return gen.rand(*shape).to(dtype=x.dtype)


def color(x: torch.Tensor, gen: torch.Generator | Draws) -> torch.Tensor:
    gen = _source(gen, x)
    n = x.shape[0]
    x = x + (_rand(gen, x, n, 1, 1, 1) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(gen, x, n, 1, 1, 1) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(gen, x, n, 1, 1, 1) + 0.5) + mean  # contrast


def translation(x: torch.Tensor, gen: torch.Generator | Draws, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels; zeros fill in. Output pixel (i, j) is input
    pixel (i + dy, j + dx): the reference implementation's direction, so the same draws give the
    same images (tests/test_diffaug_reference.py)."""
    gen = _source(gen, x)
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = gen.randint(-sh, sh + 1, (n,))
    dx = gen.randint(-sw, sw + 1, (n,))
    padded = F.pad(x, [sw, sw, sh, sh])  # (n, c, h + 2sh, w + 2sw), zero padding
    rows = (torch.arange(h, device=x.device)[None, :] + sh + dy[:, None])  # (n, h)
    cols = (torch.arange(w, device=x.device)[None, :] + sw + dx[:, None])  # (n, w)
    idx_r = rows[:, None, :, None].expand(-1, x.shape[1], -1, padded.shape[3])
    out = padded.gather(2, idx_r)  # (n, c, h, w + 2sw)
    idx_c = cols[:, None, None, :].expand(-1, x.shape[1], h, -1)
    return out.gather(3, idx_c)  # (n, c, h, w)


def cutout(x: torch.Tensor, gen: torch.Generator | Draws, ratio: float = 0.5) -> torch.Tensor:
    """Zero a random square of ratio * size per image."""
    gen = _source(gen, x)
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = gen.randint(0, h + (1 - ch % 2), (n,))
    ox = gen.randint(0, w + (1 - cw % 2), (n,))
    # square centred at (oy, ox), as in the reference implementation; clipped at the borders
    ry = torch.arange(h, device=x.device)[None, :, None] - oy[:, None, None] + ch // 2  # (n, h, 1)
    rx = torch.arange(w, device=x.device)[None, None, :] - ox[:, None, None] + cw // 2  # (n, 1, w)
    inside = (ry >= 0) & (ry < ch) & (rx >= 0) & (rx < cw)  # (n, h, w)
    return x * (~inside)[:, None].to(x.dtype)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}
names.check_bound(names.DIFFAUG_POLICIES, POLICIES, "dcgan.training.diffaug.POLICIES")


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator | Draws) -> torch.Tensor:
    gen = _source(gen, x)
    for name in policy:
        x = POLICIES[name](x, gen)
    return x
