"""Bitwise check for refactors: train small configurations that switch on every technique, through
the train stage's command (an interface a refactor keeps), and print the sha256 of every file the
stage writes to models/ (weights and model.json).

Run it on the old and on the new code on the same machine; the two outputs must be identical:

    python benchmarks/bitwise.py --out /tmp/before.json      # at the old commit
    python benchmarks/bitwise.py --out /tmp/after.json       # at the new one
    diff /tmp/before.json /tmp/after.json

The data: 160 digits at 16x16 (and their prepare-stage meta.json for meanstd); one configuration
also runs the evaluator stage first so that in-training FID picks the best generator.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

TINY_TRAIN = {"epochs": 2, "batch_size": 32, "g_width": 8, "d_width": 8, "latent_dim": 16,
              "log_every": 2, "checkpoint_every": 3, "sample_grid": 16, "eval_every": 0,
              "eval_samples": 40, "precision": "fp32"}

# every switch in params.yaml's train section, on at least once
CONFIGS: dict[str, dict] = {
    "shipped": {},
    "plain": {"r1_gamma": 0.0, "channels_last": False},
    "uniform_hinge": {"prior": "uniform", "loss": "hinge"},
    "wgan_gp": {"loss": "wgan", "gp_lambda": 10.0, "r1_gamma": 0.0, "reg_every": 1},
    "norms_spectral": {"g_norm": "instance", "d_norm": "none", "d_spectral": True},
    "diffaug_ema": {"diffaug": ["color", "translation", "cutout"], "ema_decay": 0.9},
    "encoder": {"encoder": True, "recon_loss": "smooth_l1", "recon_weight": 0.5,
                "latent_cycle_weight": 0.3},
    "encoder_l2_uniform": {"encoder": True, "recon_loss": "l2", "prior": "uniform"},
    "schedule": {"batch_schedule": [[0, 16], [5, 32]], "lr_scaling": "sqrt"},
    "schedule_linear_max_steps": {"batch_schedule": [[0, 16], [4, 32]], "lr_scaling": "linear",
                                  "max_steps": 9},
    "meanstd": {"normalize": "meanstd"},
    "gman_softmax": {"discriminators": 3, "d_aggregate": "softmax", "d_temperature": 2.0,
                     "diffaug": ["translation"], "gp_lambda": 1.0},
    "gman_max": {"discriminators": 2, "d_aggregate": "max"},
    "bf16": {"precision": "bf16"},
    "ddp": {"nproc": 2},
    "ddp_sync_bn_gman": {"nproc": 2, "sync_bn": True, "discriminators": 2, "d_aggregate": "softmax",
                         "diffaug": ["cutout"]},
    "fid_best": {"eval_every": 1, "ema_decay": 0.8},
}


def run(cmd: list[str], cwd: Path) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the hashes here (JSON) as well as to stdout")
    ap.add_argument("--only", nargs="*", help="run only these configurations")
    args = ap.parse_args()
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = copy.deepcopy(shipped)
        base["prepare"].update(image_size=16, max_images=200)
        base["augment"].update(copies=0)
        base["train"].update(TINY_TRAIN)
        for section, over in {"evaluator": {"epochs": 1, "width": 8, "feature_dim": 8, "batch_size": 64}}.items():
            base[section].update(over)
        (work / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
        py = sys.executable
        run([py, "-m", "dcgan.app.stages.prepare"], work)
        run([py, "-m", "dcgan.app.stages.evaluator"], work)
        for name, over in CONFIGS.items():
            if args.only and name not in args.only:
                continue
            params = copy.deepcopy(base)
            params["train"].update(over)
            pfile = work / f"params_{name}.yaml"
            pfile.write_text(yaml.safe_dump(params, sort_keys=False))
            out = work / "models" / name
            t0 = time.perf_counter()
            run([py, "-m", "dcgan.app.stages.train", "--params", str(pfile), "--data", "data/prepared/train.npy",
                 "--out", str(out), "--checkpoints", str(work / "ckpt" / name),
                 "--live", str(work / "live" / name)], work)
            results[name] = {f.name: sha(f) for f in sorted(out.iterdir())}
            print(f"{name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    text = json.dumps(results, indent=1, sort_keys=True)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
