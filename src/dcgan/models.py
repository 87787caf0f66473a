"""DCGAN generator and discriminator for any power-of-two image size from 16 to 256.

Sizes come from a :class:`GANConfig`, never hard-wired: G upsamples a 4x4 seed by 2 per block
up to ``image_size``; D mirrors it. Channel multipliers double toward the 4x4 end and are
capped at 8x the base width (as in the 64x64 paper model, which this reproduces exactly).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from dcgan import io
from dcgan.errors import UserError


@dataclass(frozen=True)
class GANConfig:
    """Architecture of a G/D pair; stored beside the weights so models rebuild from files alone."""

    image_size: int
    channels: int
    latent_dim: int
    g_width: int
    d_width: int

    @property
    def n_up(self) -> int:
        """Number of stride-2 blocks between 4x4 and image_size."""
        return (self.image_size // 4).bit_length() - 1


def _mult(i: int) -> int:
    return min(8, 2**i)


def init_weights(m: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02); norm scales ~ N(1, 0.02), shifts 0."""
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z (N, latent_dim) or (N, latent_dim, 1, 1) -> images (N, channels, size, size) in [-1, 1]."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.n_up  # e.g. 32x32: k = 3
        ch = [cfg.g_width * _mult(i) for i in range(k)]  # ch[i]: channels at resolution size/2^(i+1)
        layers: list[nn.Module] = [
            # (latent_dim) x 1 x 1 -> (ch[k-1]) x 4 x 4
            nn.ConvTranspose2d(cfg.latent_dim, ch[k - 1], 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch[k - 1]),
            nn.ReLU(True),
        ]
        for i in range(k - 1, 0, -1):
            # (ch[i]) x s x s -> (ch[i-1]) x 2s x 2s
            layers += [nn.ConvTranspose2d(ch[i], ch[i - 1], 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch[i - 1]), nn.ReLU(True)]
        # (ch[0]) x size/2 x size/2 -> (channels) x size x size
        layers += [nn.ConvTranspose2d(ch[0], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.net(z)


class Discriminator(nn.Module):
    """images (N, channels, size, size) -> logits (N,) (no sigmoid: losses take logits)."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.n_up
        ch = [cfg.d_width * _mult(i) for i in range(k)]  # ch[i]: channels at size/2^(i+1)
        # (channels) x size x size -> (ch[0]) x size/2 x size/2; no norm on the input layer
        layers: list[nn.Module] = [nn.Conv2d(cfg.channels, ch[0], 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for i in range(1, k):
            # (ch[i-1]) x s x s -> (ch[i]) x s/2 x s/2
            layers += [nn.Conv2d(ch[i - 1], ch[i], 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch[i]), nn.LeakyReLU(0.2, inplace=True)]
        # (ch[k-1]) x 4 x 4 -> 1 x 1 x 1
        layers += [nn.Conv2d(ch[k - 1], 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def build(cfg: GANConfig) -> tuple[Generator, Discriminator]:
    g, d = Generator(cfg), Discriminator(cfg)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d


# --------------------------------------------------------------------------------- files


def save_module(module: nn.Module, path: str | Path) -> None:
    """Save a state dict as safetensors, atomically (contiguous CPU copies)."""
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp))
    tmp.replace(path)


def save_models(g: nn.Module, d: nn.Module, cfg: GANConfig, folder: str | Path, extra: dict | None = None,
                g_best: dict[str, torch.Tensor] | None = None) -> None:
    """models/: generator.safetensors (last), generator_best.safetensors (best by FID, or the
    last when FID was not tracked), discriminator.safetensors, model.json (architecture)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_module(g, folder / "generator.safetensors")
    if g_best is not None:
        best = Generator(cfg)
        best.load_state_dict(g_best)
        save_module(best, folder / "generator_best.safetensors")
    else:
        save_module(g, folder / "generator_best.safetensors")
    save_module(d, folder / "discriminator.safetensors")
    io.write_json(folder / "model.json", {"arch": "dcgan", **asdict(cfg), **(extra or {})})


def load_config(folder: str | Path) -> GANConfig:
    path = Path(folder) / "model.json"
    if not path.is_file():
        raise UserError(f"model config {path} does not exist (run the train stage first)")
    try:
        raw = io.read_json(path)
        return GANConfig(**{k: int(raw[k]) for k in GANConfig.__dataclass_fields__})
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"model config {path} is unreadable or incomplete: {exc}") from None


def load_state(module: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights into ``module``; a file for another architecture is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model weights {path} do not exist (run the train stage first)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"model weights {path} are corrupt or not safetensors: {exc}") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(
            f"model weights {path} do not fit the architecture in model.json ({first.strip()})"
        ) from None
    return module


GENERATOR_FILES = {"last": "generator.safetensors", "best": "generator_best.safetensors"}


def load_generator(folder: str | Path, device: torch.device | str = "cpu", which: str = "last") -> Generator:
    """Rebuild G from models/model.json and load its weights (``which``: last or best); eval mode."""
    cfg = load_config(folder)
    g = Generator(cfg)
    load_state(g, Path(folder) / GENERATOR_FILES[which])
    return g.to(device).eval()


def load_discriminator(folder: str | Path, device: torch.device | str = "cpu") -> Discriminator:
    cfg = load_config(folder)
    d = Discriminator(cfg)
    load_state(d, Path(folder) / "discriminator.safetensors")
    return d.to(device).eval()


def describe(cfg: GANConfig) -> str:
    g, d = Generator(cfg), Discriminator(cfg)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return json.dumps({**asdict(cfg), "g_params": n(g), "d_params": n(d)})
