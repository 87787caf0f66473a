"""The ablation's data settings, each built the way a user's pipeline builds it: the prepare,
augment and evaluator stages run on a params file with the setting's switches, into a folder of
its own under ``--data-root`` (built once, reused by every run).

Each setting has two feature spaces:

- the **evaluator**: the evaluate stage's own extractor, trained by the evaluator stage on the
  setting's prepared split (``base.seed`` 0), which also scores in-training FID;
- the **judge**: a second classifier, trained by the same stage with another seed (1) on another
  split (prepare with ``base.seed`` 1: other images held out), never seen by training. Its
  reference statistics are those of the same training images the evaluator's are. A table
  scored only by the evaluator grades itself; where the two disagree, the report says so.

    python benchmarks/ablation_data.py --settings colour   # build (or check) the colour setting
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COLOUR_PHOTOS = ROOT.parent / "shared" / "data" / "colour-photos"


@dataclass(frozen=True)
class Setting:
    what: str
    """One line for the report's heading."""
    params: dict = field(default_factory=dict)
    """{section: {key: value}} on top of params.yaml."""
    copies: int | None = None
    """augment.copies for the training set (None: params.yaml's)."""
    prepared_from: str | None = None
    """Reuse this setting's prepared data, evaluator and judge (only augment differs)."""


COLOUR = {"prepare": {"dataset": "cifar10", "root": str(COLOUR_PHOTOS), "channels": 3, "image_size": 32},
          "augment": {"hflip": True}}
SETTINGS: dict[str, Setting] = {
    "digits": Setting("the default pipeline's training set (data/augmented/train.npy)"),
    "digits10k": Setting("the 1,438 prepared digits + 6 augmented copies (10,066 images)", copies=6,
                         prepared_from="digits"),
    "colour": Setting("3,055 real 32×32 colour photos (shared/data/colour-photos: five CIFAR-10 classes), "
                      "switched in as the README's cifar10 row says (+ `augment.hflip`)", COLOUR),
}


def params_file(base: Path, setting: Setting, seed: int, out: Path) -> Path:
    doc = yaml.safe_load(base.read_text())
    doc = copy.deepcopy(doc)
    for section, keys in setting.params.items():
        doc[section].update(keys)
    if setting.copies is not None:
        doc["augment"]["copies"] = setting.copies
    doc["base"]["seed"] = seed
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _stage(name: str, params: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", f"dcgan.app.stages.{name}", "--params", str(params), *args]
    print("  $", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


@dataclass(frozen=True)
class Pipeline:
    """The default pipeline's params and outputs, which the digits settings read (``dvc repro
    evaluator augment`` makes them); the other settings start from the same params file."""

    params: Path = ROOT / "params.yaml"
    prepared: Path = ROOT / "data/prepared"
    train: Path = ROOT / "data/augmented/train.npy"
    evaluator: Path = ROOT / "models/evaluator"


PIPELINE = Pipeline()


@dataclass(frozen=True)
class Folders:
    """Where a built setting lives."""

    params: Path
    prepared: Path
    train: Path
    """The training set with offline augmentation (augment's train.npy)."""
    evaluator: Path
    judge: Path | None


def folders(name: str, data_root: Path, pipe: Pipeline = PIPELINE) -> Folders:
    """The folders of setting ``name``; the digits settings use the pipeline's own outputs."""
    s = SETTINGS[name]
    src = s.prepared_from or name
    if src == "digits":
        judge = data_root / "digits" / "judge"
        own = name == "digits"
        return Folders(pipe.params if own else data_root / name / "params.yaml", pipe.prepared,
                       pipe.train if own else data_root / name / "augmented" / "train.npy",
                       pipe.evaluator, judge if (judge / "reference.json").is_file() else None)
    d = data_root / src
    train = data_root / name / "augmented" / "train.npy"
    return Folders(data_root / name / "params.yaml", d / "prepared", train, d / "evaluator", d / "judge")


def build(name: str, data_root: Path, pipe: Pipeline = PIPELINE) -> Folders:
    """Run the stages for setting ``name`` where their outputs are missing."""
    s, f = SETTINGS[name], folders(name, data_root, pipe)
    d = data_root / (s.prepared_from or name)
    if name != "digits" and s.prepared_from is None:
        p0 = params_file(pipe.params, s, 0, d / "params.yaml")
        p1 = params_file(pipe.params, s, 1, d / "judge_params.yaml")
        if not (f.prepared / "meta.json").is_file():
            _stage("prepare", p0, "--out", str(f.prepared))
        if not (f.evaluator / "reference.json").is_file():
            _stage("evaluator", p0, "--data", str(f.prepared), "--out", str(f.evaluator))
        if not (d / "judge_prepared" / "meta.json").is_file():
            _stage("prepare", p1, "--out", str(d / "judge_prepared"))
        if not (f.judge / "reference.json").is_file():
            _stage("evaluator", p1, "--data", str(d / "judge_prepared"), "--out", str(f.judge))
    elif name == "digits" and f.judge is None:
        # the digits judge: the pipeline's prepared data under another seed and split
        judge_dir = data_root / "digits"
        p1 = params_file(pipe.params, s, 1, judge_dir / "judge_params.yaml")
        if not (judge_dir / "judge_prepared" / "meta.json").is_file():
            _stage("prepare", p1, "--out", str(judge_dir / "judge_prepared"))
        _stage("evaluator", p1, "--data", str(judge_dir / "judge_prepared"), "--out", str(judge_dir / "judge"))
        f = folders(name, data_root, pipe)
    if name != "digits":
        params_file(pipe.params, s, 0, f.params)
        if not f.train.is_file():
            _stage("augment", f.params, "--data", str(f.prepared), "--out", str(f.train.parent))
    return f


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--data-root", default=".ablation-data")
    args = ap.parse_args()
    for name in args.settings:
        f = build(name, Path(args.data_root))
        print(f"{name}: {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
