"""Adaptive discriminator augmentation (ADA; Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data", section 2 and appendix B).

Every image D sees, real or generated, in D's step and in G's, passes through the same random
pipeline: pixel blitting (x-flip, 90-degree rotations, integer translation), general geometric
transforms (isotropic scaling, rotation, anisotropic scaling, fractional translation) and, in
``bgc``, colour transforms (brightness, contrast, luma flip, hue rotation, saturation). Each is
applied to each image with probability ``p`` (a rotation before and one after the anisotropic
scaling, each with 1 - sqrt(1 - p), so that at least one happens with probability p). Reals and
fakes are augmented alike, so D cannot learn the augmentation as a property of real images and
G is never pushed to draw it, as long as p stays below the point where the transforms start to
leak (about 0.8 for these, the paper's figure 3). The augment stage's offline copies, by
contrast, are real images only: G learns to draw them (docs/techniques.md, "Augmentation leaks").

The geometric transforms are composed into one matrix per image and applied once, on a
reflection-padded copy upsampled 2x through the symlet-6 low-pass filter, then filtered and
downsampled back (no aliasing from the resampling). The colour transforms are one 4x4 matrix
per image. The random numbers come from a :class:`~dcgan.training.draws.Draws` source (a run and
its resume draw the same), in the order of the reference implementation
(NVlabs/stylegan2-ada-pytorch, training/augment.py), so the two give the same images from the
same numbers: benchmarks/ada_reference.py checks it against a checkout of the reference (its
licence is non-commercial, so no copy of it lives here).

:class:`AdaTuner` moves p every ``interval`` steps by the overfitting heuristic r_t =
E[sign(D(real))]: up by (images seen) / ``speed_images`` when r_t is above ``target`` (0.6),
down by as much below it, never under 0 (the reference's rule; 500k images from 0 to 1).
:class:`AdaPipe` is ADA in a run (``train.ada``): the pipeline, p on the device, and D's signs
summed on the device between adjustments; its state goes into the checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dcgan.training import names
from dcgan.training.draws import Draws

SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
"""The symlet-6 wavelet's decomposition low-pass filter (12 taps): the anti-aliasing filter."""


@dataclass(frozen=True)
class AdaSpec:
    """Probability multipliers of each transform (0: off, 1: with probability p) and their
    strengths (the paper's: log2 standard deviations for the scalings, ranges for the rest)."""

    xflip: float = 1.0
    rotate90: float = 1.0
    xint: float = 1.0
    scale: float = 1.0
    rotate: float = 1.0
    aniso: float = 1.0
    xfrac: float = 1.0
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    xint_max: float = 0.125
    scale_std: float = 0.2
    rotate_max: float = 1.0
    aniso_std: float = 0.2
    xfrac_std: float = 0.125
    brightness_std: float = 0.2
    contrast_std: float = 0.5
    hue_max: float = 1.0
    saturation_std: float = 1.0

    @property
    def geometric(self) -> bool:
        return any(v > 0 for v in (self.xflip, self.rotate90, self.xint, self.scale, self.rotate, self.aniso,
                                   self.xfrac))

    @property
    def colour(self) -> bool:
        return any(v > 0 for v in (self.brightness, self.contrast, self.lumaflip, self.hue, self.saturation))


PIPELINES = {
    "bg": AdaSpec(),
    "bgc": AdaSpec(brightness=1.0, contrast=1.0, lumaflip=1.0, hue=1.0, saturation=1.0),
}
"""The paper's pipelines: ``bg`` blitting and geometry; ``bgc`` with colour (its default)."""
names.check_bound(names.ADA_PIPELINES, PIPELINES, "dcgan.training.ada.PIPELINES")


# --- homogeneous matrices: (n, k, k) from scalars or (n,) tensors, float32 ---------------------


def _matrix(rows: list[list], n: int, device: torch.device) -> torch.Tensor:
    """Rows of python numbers and (n,) tensors -> (n, k, k) float32; constants are cast to
    float32 first, as the reference does (so products round the same way)."""
    out = torch.empty(n, len(rows), len(rows[0]), device=device)
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            out[:, r, c] = v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=torch.float32)
    return out


def _translate2d(tx, ty, n, dev):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n, dev)


def _scale2d(sx, sy, n, dev):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n, dev)


def _rotate2d(theta, n, dev):
    return _matrix([[torch.cos(theta), torch.sin(-theta), 0], [torch.sin(theta), torch.cos(theta), 0], [0, 0, 1]],
                   n, dev)


def _translate3d(t, n, dev):
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], n, dev)


def _scale3d(s, n, dev):
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], n, dev)


def _rotate3d(v: torch.Tensor, theta: torch.Tensor, n, dev):
    vx, vy, vz = v[0], v[1], v[2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _matrix([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                    [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                    [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                    [0, 0, 0, 1]], n, dev)


def _chance(draws: Draws, shape: tuple[int, ...], prob: torch.Tensor) -> torch.Tensor:
    """Which images take a transform: a uniform draw below ``prob`` (one per image)."""
    return draws.rand(*shape) < prob


# --- the geometric pass ---------------------------------------------------------------------------


def geometric_matrix(n: int, p: torch.Tensor, s: AdaSpec, draws: Draws, size: tuple[int, int],
                     device: torch.device) -> torch.Tensor:
    """(n, 3, 3) inverse transforms (output pixel -> input pixel, in pixels from the centre)."""
    h, w = size
    g = torch.eye(3, device=device).expand(n, 3, 3)
    one, zero = torch.ones(n, device=device), torch.zeros(n, device=device)
    if s.xflip > 0:
        i = torch.floor(draws.rand(n) * 2)
        i = torch.where(_chance(draws, (n,), s.xflip * p), i, zero)
        g = g @ _scale2d(1 / (1 - 2 * i), 1.0, n, device)
    if s.rotate90 > 0:
        i = torch.floor(draws.rand(n) * 4)
        i = torch.where(_chance(draws, (n,), s.rotate90 * p), i, zero)
        g = g @ _rotate2d(math.pi / 2 * i, n, device)  # the inverse of a turn by -90 degrees * i
    if s.xint > 0:
        t = (draws.rand(n, 2) * 2 - 1) * s.xint_max
        t = torch.where(_chance(draws, (n, 1), s.xint * p), t, torch.zeros_like(t))
        g = g @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h), n, device)
    if s.scale > 0:
        k = torch.exp2(draws.randn(n) * s.scale_std)
        k = torch.where(_chance(draws, (n,), s.scale * p), k, one)
        g = g @ _scale2d(1 / k, 1 / k, n, device)
    p_rot = 1 - torch.sqrt((1 - s.rotate * p).clamp(0, 1))  # P(pre or post) = p
    if s.rotate > 0:
        theta = (draws.rand(n) * 2 - 1) * math.pi * s.rotate_max
        theta = torch.where(_chance(draws, (n,), p_rot), theta, zero)
        g = g @ _rotate2d(theta, n, device)  # the inverse of a turn by -theta
    if s.aniso > 0:
        k = torch.exp2(draws.randn(n) * s.aniso_std)
        k = torch.where(_chance(draws, (n,), s.aniso * p), k, one)
        g = g @ _scale2d(1 / k, 1 / (1 / k), n, device)
    if s.rotate > 0:
        theta = (draws.rand(n) * 2 - 1) * math.pi * s.rotate_max
        theta = torch.where(_chance(draws, (n,), p_rot), theta, zero)
        g = g @ _rotate2d(theta, n, device)  # the inverse of a turn by -theta
    if s.xfrac > 0:
        t = draws.randn(n, 2) * s.xfrac_std
        t = torch.where(_chance(draws, (n, 1), s.xfrac * p), t, torch.zeros_like(t))
        g = g @ _translate2d(-(t[:, 0] * w), -(t[:, 1] * h), n, device)
    return g


def _filter(device: torch.device) -> torch.Tensor:
    f = torch.tensor(SYM6, dtype=torch.float32, device=device)
    return f / f.sum()


def _upfirdn(x: torch.Tensor, f: torch.Tensor, up: int, down: int, pad: tuple[int, int, int, int],
             flip: bool, gain: float) -> torch.Tensor:
    """Upsample by zero insertion, pad (or crop, where negative), filter separably with ``f``
    (convolution; correlation when ``flip``), keep every ``down``-th pixel."""
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x0, x1, y0, y1 = pad
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0):x.shape[2] - max(-y1, 0), max(-x0, 0):x.shape[3] - max(-x1, 0)]
    f = (f * gain ** 0.5).to(x.dtype)
    if not flip:
        f = f.flip(0)
    f = f[None, None].repeat(c, 1, 1)
    x = F.conv2d(x, f.unsqueeze(2), groups=c)
    x = F.conv2d(x, f.unsqueeze(3), groups=c)
    return x[:, :, ::down, ::down]


def apply_geometric(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Resample (n, c, h, w) ``x`` through the inverse transforms ``g`` (n, 3, 3), anti-aliased."""
    n, c, h, w = x.shape
    dev = x.device
    f = _filter(dev)
    taps = f.shape[0]
    hz_pad = taps // 4
    cx, cy = (w - 1) / 2, (h - 1) / 2
    corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], dtype=torch.float32,
                           device=dev)
    cp = g @ corners.t()  # (n, 3, 4)
    margin = cp[:, :2, :].permute(1, 0, 2).flatten(1)  # (2, n * 4)
    margin = torch.cat([-margin, margin]).max(dim=1).values  # (x0, y0, x1, y1)
    margin = margin + torch.tensor([hz_pad * 2 - cx, hz_pad * 2 - cy] * 2, dtype=torch.float32, device=dev)
    margin = margin.max(torch.zeros(4, device=dev))
    margin = margin.min(torch.tensor([w - 1, h - 1] * 2, dtype=torch.float32, device=dev))
    mx0, my0, mx1, my1 = (int(v) for v in margin.ceil().to(torch.int32))
    x = F.pad(x, [mx0, mx1, my0, my1], mode="reflect")
    g = _translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, 1, dev) @ g
    # upsample 2x
    up_pad = ((taps + 1) // 2, (taps - 2) // 2, (taps + 1) // 2, (taps - 2) // 2)
    x = _upfirdn(x, f, 2, 1, up_pad, False, 4.0)
    g = _scale2d(2.0, 2.0, 1, dev) @ g @ _scale2d(1 / 2, 1 / 2, 1, dev)
    g = _translate2d(-0.5, -0.5, 1, dev) @ g @ _translate2d(0.5, 0.5, 1, dev)
    # resample into the padded output frame
    shape = [n, c, (h + hz_pad * 2) * 2, (w + hz_pad * 2) * 2]
    g = (_scale2d(2 / x.shape[3], 2 / x.shape[2], 1, dev) @ g
         @ _scale2d(1 / (2 / shape[3]), 1 / (2 / shape[2]), 1, dev))
    grid = F.affine_grid(g[:, :2, :], shape, align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # filter, downsample 2x and crop back to (h, w)
    crop = -hz_pad * 2
    down_pad = (crop + (taps - 1) // 2, crop + (taps - 2) // 2, crop + (taps - 1) // 2, crop + (taps - 2) // 2)
    return _upfirdn(x, f, 1, 2, down_pad, True, 1.0)


# --- the colour pass ------------------------------------------------------------------------------


def colour_matrix(n: int, channels: int, p: torch.Tensor, s: AdaSpec, draws: Draws,
                  device: torch.device) -> torch.Tensor:
    """(n, 4, 4) colour transforms (colour in -> colour out, homogeneous RGB)."""
    eye = torch.eye(4, device=device)
    m = eye.expand(n, 4, 4)
    one, zero = torch.ones(n, device=device), torch.zeros(n, device=device)
    v = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64).div(math.sqrt(3)).float().to(device)  # luma axis
    if s.brightness > 0:
        b = draws.randn(n) * s.brightness_std
        b = torch.where(_chance(draws, (n,), s.brightness * p), b, zero)
        m = _translate3d(b, n, device) @ m
    if s.contrast > 0:
        k = torch.exp2(draws.randn(n) * s.contrast_std)
        k = torch.where(_chance(draws, (n,), s.contrast * p), k, one)
        m = _scale3d(k, n, device) @ m
    if s.lumaflip > 0:
        i = torch.floor(draws.rand(n, 1, 1) * 2)
        i = torch.where(_chance(draws, (n, 1, 1), s.lumaflip * p), i, torch.zeros_like(i))
        m = (eye - 2 * v.outer(v) * i) @ m  # Householder reflection
    if s.hue > 0 and channels > 1:
        theta = (draws.rand(n) * 2 - 1) * math.pi * s.hue_max
        theta = torch.where(_chance(draws, (n,), s.hue * p), theta, zero)
        m = _rotate3d(v, theta, n, device) @ m  # about the luma axis
    if s.saturation > 0 and channels > 1:
        k = torch.exp2(draws.randn(n, 1, 1) * s.saturation_std)
        k = torch.where(_chance(draws, (n, 1, 1), s.saturation * p), k, torch.ones_like(k))
        m = (v.outer(v) + (eye - v.outer(v)) * k) @ m
    return m


def apply_colour(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    if c == 3:
        flat = m[:, :3, :3] @ flat + m[:, :3, 3:]
    elif c == 1:
        grey = m[:, :3, :].mean(dim=1, keepdim=True)
        flat = flat * grey[:, :, :3].sum(dim=2, keepdim=True) + grey[:, :, 3:]
    else:
        raise ValueError(f"ADA's colour transforms need RGB or grey images, got {c} channels")
    return flat.reshape(n, c, h, w)


def ada_augment(x: torch.Tensor, p: float | torch.Tensor, spec: AdaSpec, draws: Draws) -> torch.Tensor:
    """The pipeline ``spec`` at strength ``p`` on images ``x`` (n, c, h, w) in [-1, 1] (or
    standardised), drawing from ``draws``; differentiable in ``x``."""
    n, c, h, w = x.shape
    p = torch.as_tensor(p, dtype=torch.float32, device=x.device)
    if spec.geometric:
        x = apply_geometric(x, geometric_matrix(n, p, spec, draws, (h, w), x.device))
    if spec.colour:
        x = apply_colour(x, colour_matrix(n, c, p, spec, draws, x.device))
    return x


@dataclass
class AdaTuner:
    """p, tuned toward ``target`` by r_t = E[sign(D(real))] every ``interval`` steps."""

    target: float = 0.6
    interval: int = 4
    speed_images: int = 500_000
    p: float = 0.0
    r_t: float | None = None
    """The last interval's heuristic (None before the first adjustment)."""

    def adjust(self, signs: float, count: float, batch_size: int) -> float:
        """After an interval of steps of ``batch_size`` images whose D outputs on the reals had
        signs summing to ``signs`` over ``count`` outputs: move p by (images in the interval) /
        ``speed_images`` toward more augmentation when r_t is above the target, toward less
        below it; never under 0."""
        if count <= 0:
            return self.p
        self.r_t = signs / count
        step = math.copysign(1.0, self.r_t - self.target) if self.r_t != self.target else 0.0
        self.p = max(0.0, self.p + step * batch_size * self.interval / self.speed_images)
        return self.p


class AdaPipe:
    """ADA in a training run: the pipeline, its strength p where the step reads it (a device
    tensor), and D's verdicts on the reals summed on the device (no host sync in the step). The
    loop calls :meth:`after_step` after every step; every ``interval`` steps it reads the sums
    (all-reduced over the processes), moves p and starts the sums over."""

    def __init__(self, pipeline: str, device: torch.device, target: float = 0.6, interval: int = 4,
                 kimg: float = 500.0):
        if pipeline not in PIPELINES:
            raise ValueError(f"unknown ADA pipeline {pipeline!r}: one of {', '.join(PIPELINES)}")
        self.spec = PIPELINES[pipeline]
        self.tuner = AdaTuner(target, interval, max(1, round(kimg * 1000)))
        self.p = torch.zeros((), device=device)
        """The tuner's p in float32: what the step reads."""
        self.sums = torch.zeros(2, device=device)
        """Since the last adjustment: the sum of sign(D(real)) and the number of outputs."""

    def __call__(self, x: torch.Tensor, draws: Draws) -> torch.Tensor:
        return ada_augment(x, self.p, self.spec, draws)

    @torch.no_grad()
    def observe(self, logits: torch.Tensor) -> None:
        """Add one discriminator's logits on this step's (augmented) reals, on the device."""
        self.sums[0].add_(torch.sign(logits.float()).sum())
        self.sums[1].add_(logits.numel())

    def after_step(self, step: int, batch_size: int, all_mean=lambda t: t) -> bool:
        """After global step ``step`` (counted from 1) of ``batch_size`` images: True when p was
        adjusted (every ``interval`` steps; one host read). ``all_mean``: the processes' mean
        (:meth:`~dcgan.training.distributed.DistEnv.all_mean`), so that every rank moves p alike."""
        if step % self.tuner.interval:
            return False
        signs, count = (float(v) for v in all_mean(self.sums).tolist())
        self.sums.zero_()
        self.p.fill_(self.tuner.adjust(signs, count, batch_size))
        return True

    def state_dict(self) -> dict:
        return {"p": self.tuner.p, "r_t": self.tuner.r_t, "sums": self.sums.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        self.tuner.p, self.tuner.r_t = float(state["p"]), state.get("r_t")
        self.sums.copy_(state["sums"])
        self.p.fill_(self.tuner.p)
