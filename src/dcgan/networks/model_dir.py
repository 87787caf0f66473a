"""The model folder (models/gan, or what ``dvc artifacts get`` fetches): the weights as
safetensors and model.json, whose typed form is :class:`ModelCard`, written only by
:func:`save_models`.

    generator.safetensors        the last G (its EMA when train.ema_decay > 0)
    generator_best.safetensors   the best G by in-training FID (the last when FID was off)
    discriminator.safetensors    D (discriminator_<k>.safetensors for each further D of K)
    encoder.safetensors          E, when train.encoder
    model.json                   ModelCard: the architecture, the number of Ds, what the run did
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcgan.core import files
from dcgan.core.errors import UserError
from dcgan.networks.gan import Discriminator, Encoder, GANConfig, Generator, MeanLogit

GENERATOR_FILES = {"last": "generator.safetensors", "best": "generator_best.safetensors"}


@dataclass(frozen=True)
class ModelCard:
    """model.json: the architecture that rebuilds the networks from files alone, how many
    discriminators there are, and what the run that trained them did."""

    cfg: GANConfig
    discriminators: int = 1
    step: int | None = None
    """Training steps taken."""
    epochs: int | None = None
    """Epochs completed."""
    precision: str | None = None
    """The number format training ran in (fp32, bf16, fp16): train.precision resolved."""
    best_fid: float | None = None
    """The lowest in-training FID (None when FID was off)."""
    best_step: int | None = None
    """The step of generator_best.safetensors."""
    compile: str | None = None
    """How the step ran (train.compile resolved): none, graph (captured), or a torch.compile mode."""
    ema_decay: float | None = None
    """The decay of the EMA of G's weights (train.ema_decay resolved; 0 or None: no EMA)."""

    def to_json(self) -> dict[str, Any]:
        run = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cfg"}
        return {"arch": "dcgan", **asdict(self.cfg), **run}

    @classmethod
    def from_json(cls, raw: Any) -> ModelCard:
        """Older files (without the newer keys) get the defaults; a bad value raises ValueError."""
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        kw = {k: raw[k] for k in GANConfig.__dataclass_fields__ if k in raw}
        for k in ("image_size", "channels", "latent_dim", "g_width", "d_width"):
            kw[k] = int(raw[k])
        for k in ("mean", "std"):
            kw[k] = tuple(float(v) for v in kw.get(k, ()))
        if kw.get("normalize", "range") == "meanstd" and not (
                len(kw["mean"]) == len(kw["std"]) == kw["channels"] and all(v > 0 for v in kw["std"])):
            raise ValueError("normalize is meanstd but mean/std do not give one positive std per channel")
        k = raw.get("discriminators", 1)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"discriminators must be a positive integer, got {k!r}")
        run = {f.name: raw.get(f.name) for f in fields(cls) if f.name not in ("cfg", "discriminators")}
        return cls(GANConfig(**kw), k, **run)


def discriminator_file(k: int) -> str:
    """discriminator.safetensors for the first (or only) D, discriminator_<k>.safetensors after."""
    return "discriminator.safetensors" if k == 0 else f"discriminator_{k}.safetensors"


def save_models(folder: str | Path, card: ModelCard, g: nn.Module, ds: list[nn.Module],
                g_best: dict[str, torch.Tensor] | None = None, e: nn.Module | None = None) -> None:
    """Write the model folder (see the module's docstring): ``g`` as the last generator,
    ``g_best`` (a state dict) as the best one (``g`` when None)."""
    if len(ds) != card.discriminators:
        raise ValueError(f"{len(ds)} discriminators to save, the card says {card.discriminators}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if e is not None:
        files.save_module(e, folder / "encoder.safetensors")
    files.save_module(g, folder / GENERATOR_FILES["last"])
    if g_best is not None:
        best = Generator(card.cfg)
        best.load_state_dict(g_best)
        files.save_module(best, folder / GENERATOR_FILES["best"])
    else:
        files.save_module(g, folder / GENERATOR_FILES["best"])
    for k, d in enumerate(ds):
        files.save_module(d, folder / discriminator_file(k))
    files.write_json(folder / "model.json", card.to_json())


def read_card(folder: str | Path) -> ModelCard:
    path = Path(folder) / "model.json"
    if not path.is_file():
        raise UserError(f"model config {path} does not exist (run the train stage first)")
    try:
        return ModelCard.from_json(files.read_json(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"model config {path} is unreadable or incomplete: {exc}") from None


def load_config(folder: str | Path) -> GANConfig:
    """The architecture in the folder's model.json."""
    return read_card(folder).cfg


def load_state(module: nn.Module, path: str | Path) -> nn.Module:
    """Weights from ``path`` into a model rebuilt from model.json (a mismatch names the file)."""
    return files.load_state(module, path, "the architecture in model.json")


def pick_generator(which: str, ema_decay: float | None) -> str:
    """``which`` generator file to use: best or last as asked; auto: the last when G was trained
    with an EMA of its weights (already an average over the late steps, and no worse than the
    best by a 500-sample in-training FID in 11 of 12 colour runs; on grey digits within 0.01
    judge FID of it in 5 of 5: reports/vs_example.md), else the best."""
    if which == "auto":
        return "last" if ema_decay else "best"
    if which not in GENERATOR_FILES:
        raise ValueError(f"generator must be auto, best or last, got {which!r}")
    return which


def load_generator(folder: str | Path, device: torch.device | str = "cpu", which: str = "last") -> Generator:
    """Rebuild G from models/model.json and load its weights (``which``: last, best or auto, see
    :func:`pick_generator`); eval mode."""
    card = read_card(folder)
    g = Generator(card.cfg)
    load_state(g, Path(folder) / GENERATOR_FILES[pick_generator(which, card.ema_decay)])
    return g.to(device).eval()


def load_encoder(folder: str | Path, device: torch.device | str = "cpu") -> Encoder | None:
    """The encoder trained with G, or None when none was."""
    cfg = load_config(folder)
    if not cfg.encoder:
        return None
    e = Encoder(cfg)
    load_state(e, Path(folder) / "encoder.safetensors")
    return e.to(device).eval()


def load_discriminator(folder: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """The trained discriminator, or for K > 1 (model.json ``discriminators``) their
    :class:`MeanLogit` ensemble; eval mode."""
    card = read_card(folder)
    members = []
    for i in range(card.discriminators):
        d = Discriminator(card.cfg)
        load_state(d, Path(folder) / discriminator_file(i))
        members.append(d)
    out = members[0] if card.discriminators == 1 else MeanLogit(members)
    return out.to(device).eval()
