"""The domain feature network: a small classifier trained offline on the prepared labelled data,
whose features give FID (and the other feature metrics) and whose logits give the Inception Score.

This plays the role Inception-v3 plays for natural images, for datasets (like 8x8 digits)
where ImageNet features say little and the weights cannot be downloaded.

Its features are multi-scale: the per-channel mean and standard deviation over positions of each
downsampling stage but the last (texture and local contrast at each scale), then the penultimate
embedding (what the class depends on). The embedding alone (the features before issue 37) was
blind to what an EMA of G's weights does to colour photos, where an independent judge saw it in 5
of 5 paired runs: docs/techniques.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dcgan.core.errors import SettingError, UserError
from dcgan.core.files import file_digest, load_state, save_module, write_json
from dcgan.core.pixels import to_unit
from dcgan.core.progress import progress
from dcgan.core.seeding import generator_for


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int
    channels: int
    num_classes: int
    width: int
    feature_dim: int


class Classifier(nn.Module):
    """images (N, C, S, S) in [-1, 1] -> (features (N, feature_dim), logits (N, num_classes))."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in, c, s = cfg.channels, cfg.width, cfg.image_size
        while s > 4:  # halve until 4x4: (c_in) x s x s -> (c) x s/2 x s/2
            layers += [nn.Conv2d(c_in, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True),
                       nn.Conv2d(c, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
            c_in, c, s = c, min(c * 2, cfg.width * 8), s // 2
        self.body = nn.Sequential(*layers)
        # (c_in) x 4 x 4 -> (c_in) -> feature_dim
        self.embed = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                   nn.Linear(c_in, cfg.feature_dim), nn.ReLU(True))
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.embed(self.body(x))
        return f, self.head(f)

    @property
    def stage_widths(self) -> list[int]:
        """Channels of each downsampling stage whose statistics join the features (all but the
        last, which the embedding summarises)."""
        return [m.out_channels for m in self.body if isinstance(m, nn.Conv2d) and m.stride == (2, 2)][:-1]

    @property
    def out_dim(self) -> int:
        """The size of :meth:`features`: mean and std per channel of each stage, then the embedding."""
        return 2 * sum(self.stage_widths) + self.cfg.feature_dim

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images in [-1, 1] -> (multi-scale features (N, out_dim), logits (N, num_classes))."""
        parts: list[torch.Tensor] = []
        h, n_stats = x, len(self.stage_widths)
        layers = list(self.body)
        for i, m in enumerate(layers):
            h = m(h)
            # after the activation that follows each stride-2 conv and its norm
            if len(parts) < 2 * n_stats and isinstance(m, nn.ReLU) and i >= 2 and isinstance(
                    layers[i - 2], nn.Conv2d) and layers[i - 2].stride == (2, 2):
                parts += [h.mean((2, 3)), h.std((2, 3))]
        f = self.embed(h)
        return torch.cat([*parts, f], 1), self.head(f)


def train_classifier(images: np.ndarray, labels: np.ndarray, cfg: ClassifierConfig, epochs: int,
                     batch_size: int, lr: float, seed: int, device: torch.device) -> Classifier:
    """Supervised training with light shift augmentation (so features are not brittle)."""
    if (labels < 0).any():
        raise SettingError(
            "extractor", "is classifier, which needs labelled data, but this dataset has no labels; "
                         "use {extractor}: inception for it"
        )
    torch.manual_seed(seed)
    model = Classifier(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x_all = torch.from_numpy(images).to(device)
    y_all = torch.from_numpy(labels).to(device)
    n = len(x_all)
    steps = max(1, n // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    model.train()
    for epoch in progress(range(epochs), desc="evaluator", unit="epoch"):
        order = torch.randperm(n, generator=generator_for(seed, "evaluator", epoch)).to(device)
        for b in range(steps):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x = to_unit(x_all[idx])
            # random integer shifts of up to 1/8 of the size, by rolling (cheap, label-safe)
            shift = max(1, cfg.image_size // 8)
            dx, dy = (torch.randint(-shift, shift + 1, (2,), generator=generator_for(seed, "shift", epoch, b))).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            _, logits = model(x)
            loss = F.cross_entropy(logits, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.inference_mode()
def extract(model: Classifier, images, batch_size: int, device: torch.device,
            desc: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, S, S) (an array, or rows read on demand) -> (features (N, D),
    logits (N, K)), float32 as the network computes them, filled in batch by batch."""
    n = len(images)
    feats = np.empty((n, model.out_dim), np.float32)
    logits = np.empty((n, model.cfg.num_classes), np.float32)
    for start in progress(range(0, n, batch_size), desc=desc, unit="batch", leave=False,
                          disable=n < 20 * batch_size):
        x = to_unit(torch.from_numpy(images[start:start + batch_size])).to(device)
        f, lg = model.features(x)
        feats[start:start + len(x)] = f.float().cpu().numpy()
        logits[start:start + len(x)] = lg.float().cpu().numpy()
    return feats, logits


@torch.inference_mode()
def accuracy(model: Classifier, images: np.ndarray, labels: np.ndarray, device: torch.device) -> float:
    _, logits = extract(model, images, 512, device)
    return float((logits.argmax(1) == labels).mean())


class ClassifierExtractor:
    """The evaluator stage's classifier as a feature extractor (multi-scale features + logits).
    Its id names the weights and the feature layout ("ms": :meth:`Classifier.features`), so
    scores from the embedding-only features before are never compared with these."""

    kind = "classifier"

    def __init__(self, folder: str | Path, device: torch.device, batch_size: int = 500):
        self.model = load_classifier(folder, device)
        self.feature_dim = self.model.out_dim
        self.id = f"classifier-ms:{file_digest(Path(folder) / 'classifier.safetensors')[:12]}"
        self.device, self.batch_size = device, batch_size

    def __call__(self, images: np.ndarray, desc: str = "features") -> tuple[np.ndarray, np.ndarray]:
        return extract(self.model, images, self.batch_size, self.device, desc)


def save_classifier(model: Classifier, folder: str | Path, extra: dict | None = None) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_module(model, folder / "classifier.safetensors")
    write_json(folder / "classifier.json", {**asdict(model.cfg), **(extra or {})})


def load_classifier(folder: str | Path, device: torch.device | str = "cpu") -> Classifier:
    path = Path(folder) / "classifier.json"
    if not path.is_file():
        raise UserError(f"feature extractor config {path} does not exist (run the evaluator stage)")
    raw = json.loads(path.read_text())
    cfg = ClassifierConfig(**{k: int(raw[k]) for k in ClassifierConfig.__dataclass_fields__})
    model = Classifier(cfg)
    load_state(model, Path(folder) / "classifier.safetensors")
    return model.to(device).eval()
