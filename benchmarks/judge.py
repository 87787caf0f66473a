"""An independent judge for the benchmarks: a feature space that differs in kind from the
evaluator's, so that a verdict does not come from the instrument that also picks checkpoints.

The evaluator (``dcgan.metrics.classifier``) is a plain conv/BatchNorm/ReLU stack trained with
Adam on the prepared *training* split, with roll shifts, and its FID features are its 64-d
penultimate layer. The judge differs in every one of those:

- **architecture**: a pre-activation ResNet (3 stages of 2 residual blocks, 32/64/128 channels,
  GroupNorm and SiLU), no BatchNorm;
- **training recipe**: SGD with Nesterov momentum, cosine schedule, weight decay, label
  smoothing, inputs standardised by its own data's per-channel mean and std. Its only
  augmentation is a horizontal flip, on colour data alone (photos come in both orientations;
  digits do not). No crops, shifts or rotations: a judge trained to ignore them could not see a
  recipe whose samples come out cropped, shifted or rotated (issue 49: with 4-pixel crops it
  put the augment stage's copies at 1.1x the distance of unseen photos). Without them it still
  puts them at 0.98x: class features see little of a 5-degree turn or a 90% crop, so a leak is
  measured by benchmarks/leak.py, not by this FID;
- **data**: the prepared **holdout** split only: images no GAN ever trains on;
- **features**: multi-scale, 352-d: per-channel mean and standard deviation of stage 1 and 2's
  activations (texture and sharpness: a blurred image has less spread in its early channels)
  and the mean of stage 3's, plus its class logits for the Inception Score.

Its FID is against the reference images given (a setting's GAN training images, the same set
for every arm of a comparison), at the sample count given: compare arms only at equal counts.

    python benchmarks/judge.py --setting colour     # build (or load) it and print what it sees
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dcgan.core.files import load_state, save_module, write_json
from dcgan.metrics.fid import feature_stats, frechet_distance
from dcgan.metrics.inception_score import inception_score

WIDTHS = (32, 64, 128)


@dataclass(frozen=True)
class JudgeConfig:
    channels: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    epochs: int = 120
    batch_size: int = 64
    lr: float = 0.05
    seed: int = 7
    augment: str = "mirror"
    """What it trained with: "mirror" (colour) or "none" (grey). Judges cached before issue 49
    have no such key: they trained with crops, and :func:`build` refuses them."""


class Block(nn.Module):
    """Pre-activation residual block: (c_in) x s x s -> (c_out) x s/stride x s/stride."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.n2, self.c2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.skip = (nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out
                     else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        return self.c2(F.silu(self.n2(h))) + self.skip(x)


class JudgeNet(nn.Module):
    """uint8-range images scaled to [0, 1] (N, C, S, S) -> (features (N, 352), logits (N, K))."""

    def __init__(self, cfg: JudgeConfig):
        super().__init__()
        self.cfg = cfg
        w1, w2, w3 = WIDTHS
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(cfg.std).view(1, -1, 1, 1))
        self.stem = nn.Conv2d(cfg.channels, w1, 3, 1, 1, bias=False)
        self.s1 = nn.Sequential(Block(w1, w1, 1), Block(w1, w1, 1))  # (w1) x S x S
        self.s2 = nn.Sequential(Block(w1, w2, 2), Block(w2, w2, 1))  # (w2) x S/2 x S/2
        self.s3 = nn.Sequential(Block(w2, w3, 2), Block(w3, w3, 1))  # (w3) x S/4 x S/4
        self.out = nn.GroupNorm(8, w3)
        self.head = nn.Linear(w3, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = self.s1(self.stem((x - self.mean) / self.std))
        h2 = self.s2(h1)
        h3 = F.silu(self.out(self.s3(h2))).mean((2, 3))
        feats = torch.cat([h1.mean((2, 3)), h1.std((2, 3)), h2.mean((2, 3)), h2.std((2, 3)), h3], 1)
        return feats, self.head(h3)


def _mirror(x: torch.Tensor, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """The judge's only augmentation: each image mirrored with probability 1/2 (when ``flip``)."""
    if not flip:
        return x
    out = x.clone()
    mask = torch.rand(len(x), generator=gen) < 0.5
    out[mask] = out[mask].flip(3)
    return out


def train_judge(images: np.ndarray, labels: np.ndarray, cfg: JudgeConfig, flip: bool,
                redraw: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None) -> JudgeNet:
    """Train on uint8 (N, C, S, S) ``images`` with integer ``labels`` (the holdout split),
    mirrored at random when ``flip``, otherwise as they are. ``redraw(epoch)``, if given, gives
    each epoch after the first its own (images, labels) of the same size (fresh random copies)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = JudgeNet(cfg)
    x_all = torch.from_numpy(images).float() / 255.0
    y_all = torch.from_numpy(labels.astype(np.int64))
    steps = max(1, len(x_all) // cfg.batch_size)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * steps)
    net.train()
    for epoch in range(cfg.epochs):
        if redraw is not None and epoch:
            x_new, y_new = redraw(epoch)
            x_all, y_all = torch.from_numpy(x_new).float() / 255.0, torch.from_numpy(y_new.astype(np.int64))
        order = torch.randperm(len(x_all), generator=gen)
        for b in range(steps):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            _, logits = net(_mirror(x_all[idx], flip, gen))
            loss = F.cross_entropy(logits, y_all[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


@torch.inference_mode()
def features(net: JudgeNet, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, C, S, S) -> (features (N, 352) float64, logits (N, K))."""
    fs, ls = [], []
    for i in range(0, len(images), batch):
        f, lg = net(torch.from_numpy(np.asarray(images[i:i + batch])).float() / 255.0)
        fs.append(f.double().numpy())
        ls.append(lg.float().numpy())
    return np.concatenate(fs), np.concatenate(ls)


class Judge:
    """The judge with the reference statistics of ``reals``: ``score(images)`` gives FID and IS."""

    def __init__(self, net: JudgeNet, reals: np.ndarray, accuracy: float = math.nan):
        self.net, self.accuracy = net, accuracy
        self.mu, self.sigma = feature_stats(features(net, reals)[0])

    def score(self, images: np.ndarray, is_splits: int = 10,
              also: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> dict[str, float]:
        """FID against the reference, IS, and ``fid_<name>`` against each of ``also``'s
        (mu, sigma) in this judge's space, from one pass over ``images``."""
        f, logits = features(self.net, images)
        stats = feature_stats(f)
        out = {"fid": frechet_distance(*stats, self.mu, self.sigma), "is_mean": inception_score(logits, is_splits)[0]}
        for name, (mu, sigma) in (also or {}).items():
            out[f"fid_{name}"] = frechet_distance(*stats, mu, sigma)
        return out


def build(folder: Path, holdout: np.ndarray, labels: np.ndarray, reals: np.ndarray,
          test: tuple[np.ndarray, np.ndarray] | None = None, epochs: int = JudgeConfig.epochs) -> Judge:
    """The judge trained on ``holdout`` (cached in ``folder``), referenced on ``reals``. ``test``
    (images, labels): where its accuracy is measured (recorded once, when it is trained)."""
    folder = Path(folder)
    cfg_path = folder / "judge.json"
    if cfg_path.is_file():
        raw = json.loads(cfg_path.read_text())
        if "augment" not in raw["config"]:
            raise SystemExit(f"error: {folder} holds a judge trained with random crops (before issue 49), "
                             "which cannot see a crop leak; delete the folder to train one without them")
        cfg = JudgeConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in raw["config"].items()})
        net = JudgeNet(cfg)
        load_state(net, folder / "judge.safetensors")
        return Judge(net.eval(), reals, raw["accuracy"])
    unit = holdout.astype(np.float64) / 255.0
    cfg = JudgeConfig(channels=holdout.shape[1], num_classes=int(labels.max()) + 1,
                      mean=tuple(float(m) for m in unit.mean((0, 2, 3))),
                      std=tuple(float(s) for s in unit.std((0, 2, 3))), epochs=epochs,
                      augment="mirror" if holdout.shape[1] == 3 else "none")
    net = train_judge(holdout, labels, cfg, flip=cfg.augment == "mirror")
    acc = math.nan
    if test is not None:
        acc = float((features(net, test[0])[1].argmax(1) == test[1]).mean())
    folder.mkdir(parents=True, exist_ok=True)
    save_module(net, folder / "judge.safetensors")
    write_json(cfg_path, {"config": asdict(cfg), "accuracy": acc, "trained_on": len(holdout)})
    return Judge(net, reals, acc)
