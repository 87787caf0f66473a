"""A leak detector: does a generator draw what the augment stage's copies look like?

stylegan2-ada calls an augmentation *leaking* when it shows up in what G draws: D is shown
rotated, cropped and shifted copies as real, so G learns to draw rotated, cropped and shifted
images. An FID sees that only in a feature space not trained to ignore it; this looks at it
directly. A small classifier (judge.py's ResNet with two classes) learns to tell the GAN's
training originals (class 0) from the augment stage's copies of them (class 1), with fresh random
copies every epoch, so that it learns the augmentation and not a fixed set of images. Mirroring
is no tell where the copies mirror (photos come in both orientations): both classes are mirrored
at random there.

Its **leak rate** for a set of images is the share it calls augmented (p > 1/2). Read it
against the same detector on images nobody trained on:

- **held-out originals**: the rate of a generator that draws the data itself (its false alarms);
- **held-out copies**: those photos through the augment stage, the rate of a generator that
  draws the copies (what it catches).

A generator trained without copies cannot leak them: its rate is what the detector says of a
generator's own flaws, the floor a leak is measured from.

**At the data's own resolution** (``native``): data that prepare upscaled (the 8×8 digits to
32×32) sit on the lattice of that upscale, and any resample (a copy's rotation, shift or zoom;
a generator's every pixel) leaves it. A detector on the pixels then learns "off the lattice",
which is no geometry at all. Given the resolution the data came in at, every image the detector
trains on or judges is first projected onto the upscales of that resolution (least squares, the
upscale being prepare's own resize), so that what is left to tell apart is what a rotation, a
shift or a zoom does to the digit.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import judge as judge_mod
import numpy as np
import torch
import torch.nn.functional as F

from dcgan.core.files import load_state, save_module, write_json
from dcgan.data.augment import Augmentation, augment


def copies_of(images: np.ndarray, spec: Augmentation, seed: int) -> np.ndarray:
    """One augmented copy of each image, drawn as the augment stage draws them (seed ``seed``)."""
    return augment(images, Augmentation(1, spec.hflip, spec.crop_scale_min, spec.rotate_degrees, spec.translate),
                   seed)[len(images):]


@functools.lru_cache(maxsize=4)
def upscale_projection(size: int, native: int) -> np.ndarray:
    """(size², size²): the least-squares projection onto prepare's bilinear upscales of
    ``native``×``native`` images to ``size``×``size`` (dcgan.data.shaping.fit_square's resize)."""
    basis = torch.eye(native * native, dtype=torch.float64).reshape(-1, 1, native, native)
    up = F.interpolate(basis, size=[size, size], mode="bilinear", align_corners=False, antialias=True)
    u = up.reshape(native * native, size * size).T.numpy()
    return u @ np.linalg.pinv(u)


def on_lattice(images: np.ndarray, native: int | None) -> np.ndarray:
    """uint8 (N, C, S, S) ``images`` projected onto the upscales of ``native``×``native`` images,
    channel by channel, rounded back to uint8 (as they are when ``native`` is None)."""
    if native is None:
        return images
    n, c, s, _ = images.shape
    proj = upscale_projection(s, native)
    flat = np.asarray(images, np.float64).reshape(n * c, s * s) @ proj.T
    return flat.reshape(n, c, s, s).round().clip(0, 255).astype(np.uint8)


def off_lattice(images: np.ndarray, native: int) -> float:
    """The mean share of an image's energy (its squared pixel values) that lies off the upscales
    of ``native``×``native`` images: 0 for prepare's upscales themselves (up to rounding)."""
    n, c, s, _ = images.shape
    flat = np.asarray(images, np.float64).reshape(n * c, s * s)
    rest = flat - flat @ upscale_projection(s, native).T
    return float(np.mean((rest ** 2).sum(1) / np.maximum((flat ** 2).sum(1), 1.0)))


@dataclass
class Detector:
    net: judge_mod.JudgeNet
    held_out: dict[str, float]
    """Its leak rate on held-out originals and on held-out copies (measured once, when trained)."""
    native: int | None = None
    """The data's own resolution: images are projected onto its upscales first (None: the pixels)."""

    @torch.inference_mode()
    def rate(self, images: np.ndarray, batch: int = 500) -> float:
        """The share of uint8 (N, C, S, S) ``images`` it calls augmented."""
        called = 0
        for i in range(0, len(images), batch):
            x = on_lattice(np.asarray(images[i:i + batch]), self.native)
            logits = self.net(torch.from_numpy(x).float() / 255.0)[1]
            called += int((logits[:, 1] > logits[:, 0]).sum())
        return called / len(images)


def _set(originals: np.ndarray, spec: Augmentation, seed: int, native: int | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([originals, copies_of(originals, spec, seed)])
    return on_lattice(x, native), np.repeat(np.array([0, 1]), len(originals))


def build(folder: Path, originals: np.ndarray, spec: Augmentation, held_out: np.ndarray,
          epochs: int = 12, seed: int = 11, native: int | None = None) -> Detector:
    """The detector for ``spec``'s copies of ``originals`` (cached in ``folder``: refused if it was
    trained for another augmentation or resolution), with its rates on ``held_out`` originals and
    their copies; ``native``: the data's own resolution (see the module's docstring)."""
    folder = Path(folder)
    meta = folder / "leak.json"
    if meta.is_file():
        raw = json.loads(meta.read_text())
        if raw["augmentation"] != asdict(spec) or raw.get("native") != native:
            raise SystemExit(f"error: {folder} holds a leak detector for another augmentation or resolution "
                             f"({raw['augmentation']}, native {raw.get('native')}; asked for {asdict(spec)}, "
                             f"native {native}); delete it or give another folder")
        cfg = judge_mod.JudgeConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in raw["config"].items()})
        net = judge_mod.JudgeNet(cfg)
        load_state(net, folder / "leak.safetensors")
        return Detector(net.eval(), raw["held_out"], native)
    unit = originals.astype(np.float64) / 255.0
    cfg = judge_mod.JudgeConfig(channels=originals.shape[1], num_classes=2,
                                mean=tuple(float(m) for m in unit.mean((0, 2, 3))),
                                std=tuple(float(s) for s in unit.std((0, 2, 3))), epochs=epochs, seed=seed,
                                augment="mirror" if spec.hflip else "none")
    x, y = _set(originals, spec, seed * 1000, native)
    net = judge_mod.train_judge(x, y, cfg, flip=spec.hflip,
                                redraw=lambda epoch: _set(originals, spec, seed * 1000 + epoch, native))
    det = Detector(net, {}, native)
    det.held_out = {"originals": det.rate(held_out), "copies": det.rate(copies_of(held_out, spec, seed * 1000 - 1)),
                    "images": len(held_out)}
    folder.mkdir(parents=True, exist_ok=True)
    save_module(net, folder / "leak.safetensors")
    write_json(meta, {"config": asdict(cfg), "augmentation": asdict(spec), "held_out": det.held_out,
                      "trained_on": len(originals), **({"native": native} if native is not None else {})})
    return det


def rate_interval(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95% interval for a share ``rate`` of ``n`` images."""
    if n == 0:
        return (math.nan, math.nan)
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)
