"""The DCGAN networks (generator, discriminator, encoder) for any power-of-two size from 16 to 256.

Sizes come from a :class:`GANConfig`, never hard-wired: G upsamples a 4x4 seed by 2 per block
up to ``image_size``; D mirrors it. Channel multipliers double toward the 4x4 end and are
capped at 8x the base width (as in the 64x64 paper model, which this reproduces exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dcgan.core import pixels


@dataclass(frozen=True)
class GANConfig:
    """Architecture of a G/D pair; stored beside the weights so models rebuild from files alone."""

    image_size: int
    channels: int
    latent_dim: int
    g_width: int
    d_width: int
    g_norm: str = "batch"
    """Normalisation in G's hidden blocks: batch, instance or none."""
    d_norm: str = "batch"
    """Normalisation in D's hidden blocks: batch, instance or none."""
    d_spectral: bool = False
    """Spectral normalisation on every D conv."""
    prior: str = "normal"
    """Latent prior: normal (N(0, I)) or uniform (U[-1, 1])."""
    encoder: bool = False
    """Whether an encoder E (images -> z) was trained alongside."""
    normalize: str = "range"
    """The space D sees and G produces: range ([-1, 1]) or meanstd ((x - mean) / std per channel)."""
    mean: tuple[float, ...] = ()
    """Per-channel mean of the training images on the [0, 1] scale (meanstd only)."""
    std: tuple[float, ...] = ()
    """Per-channel std of the training images on the [0, 1] scale (meanstd only)."""

    @property
    def n_up(self) -> int:
        """Number of stride-2 blocks between 4x4 and image_size."""
        return (self.image_size // 4).bit_length() - 1


def to_network(x: torch.Tensor, cfg: GANConfig) -> torch.Tensor:
    """Images in [-1, 1] -> the space D sees and G produces (the identity for ``range``)."""
    return x if cfg.normalize == "range" else pixels.standardise(x, cfg.mean, cfg.std)


def to_pixels(y: torch.Tensor, cfg: GANConfig | None) -> torch.Tensor:
    """The inverse of :func:`to_network`: network-space images -> [-1, 1] (then
    :func:`dcgan.core.pixels.to_uint8`). ``cfg`` None (a module without one): the identity."""
    return y if cfg is None or cfg.normalize == "range" else pixels.unstandardise(y, cfg.mean, cfg.std)


def pixels_of(g: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """G's output ``y`` in [-1, 1], whatever space G was trained in (G's own config says)."""
    return to_pixels(y, getattr(g, "cfg", None))


def prior_of(g: nn.Module) -> str:
    """The latent prior G samples from: its config's, or normal for a module without one."""
    cfg = getattr(g, "cfg", None)
    return cfg.prior if cfg is not None else "normal"


def _mult(i: int) -> int:
    return min(8, 2**i)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """batch | instance (affine, no running stats) | none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def sample_prior(n: int, latent_dim: int, prior: str, gen: torch.Generator | None = None) -> torch.Tensor:
    """z (n, latent_dim) from the latent prior: normal N(0, I) or uniform U[-1, 1]."""
    if prior == "normal":
        return torch.randn(n, latent_dim, generator=gen)
    if prior == "uniform":
        return torch.rand(n, latent_dim, generator=gen) * 2 - 1
    raise ValueError(f"unknown prior {prior!r}")


def init_weights(m: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02); norm scales ~ N(1, 0.02), shifts 0."""
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d) and m.weight is not None:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class OutputMap(nn.Module):
    """G's last layer under ``normalize: meanstd``: a fixed affine map of tanh's [-1, 1] onto the
    standardised range ((x + 1) / 2 - mean) / std, which a tanh alone cannot cover. Not trained;
    no state (it is rebuilt from model.json's mean and std)."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        scale, shift = pixels.affine(cfg.mean, cfg.std)
        self.register_buffer("scale", scale.clone(), persistent=False)  # own copies: modules move buffers
        self.register_buffer("shift", shift.clone(), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t * self.scale + self.shift


class Generator(nn.Module):
    """z (N, latent_dim) or (N, latent_dim, 1, 1) -> images (N, channels, size, size) in the
    network space: [-1, 1] (``normalize: range``) or standardised (``meanstd``, tanh mapped by
    :class:`OutputMap`); :func:`pixels_of` maps them back to [-1, 1]."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.n_up  # e.g. 32x32: k = 3
        ch = [cfg.g_width * _mult(i) for i in range(k)]  # ch[i]: channels at resolution size/2^(i+1)
        layers: list[nn.Module] = [
            # (latent_dim) x 1 x 1 -> (ch[k-1]) x 4 x 4
            nn.ConvTranspose2d(cfg.latent_dim, ch[k - 1], 4, 1, 0, bias=False),
            norm_layer(cfg.g_norm, ch[k - 1]),
            nn.ReLU(True),
        ]
        for i in range(k - 1, 0, -1):
            # (ch[i]) x s x s -> (ch[i-1]) x 2s x 2s
            layers += [nn.ConvTranspose2d(ch[i], ch[i - 1], 4, 2, 1, bias=False),
                       norm_layer(cfg.g_norm, ch[i - 1]), nn.ReLU(True)]
        # (ch[0]) x size/2 x size/2 -> (channels) x size x size
        layers += [nn.ConvTranspose2d(ch[0], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        if cfg.normalize != "range":
            layers.append(OutputMap(cfg))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.net(z)


def _down_stack(channels: int, width: int, k: int, norm: str, spectral: bool) -> list[nn.Module]:
    """The shared D/E trunk: (channels) x size x size -> (width * mult) x 4 x 4."""
    sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
    ch = [width * _mult(i) for i in range(k)]  # ch[i]: channels at size/2^(i+1)
    # (channels) x size x size -> (ch[0]) x size/2 x size/2; no norm on the input layer
    layers: list[nn.Module] = [sn(nn.Conv2d(channels, ch[0], 4, 2, 1, bias=False)),
                               nn.LeakyReLU(0.2, inplace=True)]
    for i in range(1, k):
        # (ch[i-1]) x s x s -> (ch[i]) x s/2 x s/2
        layers += [sn(nn.Conv2d(ch[i - 1], ch[i], 4, 2, 1, bias=False)),
                   norm_layer(norm, ch[i]), nn.LeakyReLU(0.2, inplace=True)]
    return layers


class Discriminator(nn.Module):
    """images (N, channels, size, size) -> logits (N,) (no sigmoid: losses take logits)."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.n_up
        layers = _down_stack(cfg.channels, cfg.d_width, k, cfg.d_norm, cfg.d_spectral)
        # (ch[k-1]) x 4 x 4 -> 1 x 1 x 1
        last = nn.Conv2d(cfg.d_width * _mult(k - 1), 1, 4, 1, 0, bias=False)
        layers += [nn.utils.parametrizations.spectral_norm(last) if cfg.d_spectral else last]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class Encoder(nn.Module):
    """images (N, channels, size, size) -> z (N, latent_dim): D's trunk with a latent head.

    For a uniform prior the output is squashed by tanh into [-1, 1].
    """

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.n_up
        layers = _down_stack(cfg.channels, cfg.d_width, k, cfg.d_norm, False)
        # (ch[k-1]) x 4 x 4 -> latent_dim x 1 x 1
        layers += [nn.Conv2d(cfg.d_width * _mult(k - 1), cfg.latent_dim, 4, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x).flatten(1)
        return torch.tanh(z) if self.cfg.prior == "uniform" else z


def build(cfg: GANConfig) -> tuple[Generator, Discriminator]:
    g, d = Generator(cfg), Discriminator(cfg)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d


def build_encoder(cfg: GANConfig) -> Encoder:
    e = Encoder(cfg)
    e.apply(init_weights)
    return e


class MeanLogit(nn.Module):
    """An ensemble of discriminators as one: the mean of their logits (what DRS ranks by)."""

    def __init__(self, members: list[Discriminator]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([d(x).float() for d in self.members]).mean(0)
