"""Ablation of the DCGAN-recipe techniques at equal training time, as DVC experiments.

    python benchmarks/ablation.py                 # all rows (about 5 minutes each on 2 CPU cores)
    python benchmarks/ablation.py --budget 60     # seconds of training per row
    python benchmarks/ablation.py --rows plain ema

For each row: a short in-process calibration measures seconds per training step with that
row's switches, ``train.epochs`` is set so that training takes about the budget (the default
run's training time unless given), and the row runs as a DVC experiment
(``dvc exp run --temp -n abl-<row> -S ...``), so `dvc exp show -A` lists every row with its
params and metrics. Each row's numbers are kept in reports/ablation.json (rows run earlier stay
in the table; ``--rows`` with no names only rewrites it) and the table goes to reports/ablation.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import train_speed  # benchmarks/train_speed.py (benchmarks/ is sys.path[0] when run as a script)
import yaml

from dcgan import retrain as rt
from dcgan.config import load_params
from dcgan.data.arrays import load_images
from dcgan.models import gan_config
from dcgan.training.schedule import count_steps

OFF = {  # plain DCGAN: every technique off
    "train.diffaug": "[]", "train.ema_decay": "0.0", "train.r1_gamma": "0.0", "train.gp_lambda": "0.0",
    "train.encoder": "false", "train.loss": "bce", "train.d_spectral": "false", "sample.drs": "false",
}
# row -> (label, overrides on top of OFF; None = the shipped params.yaml as is)
ROWS: dict[str, tuple[str, dict[str, str] | None]] = {
    "plain": ("plain DCGAN", {}),
    "diffaug": ("+ DiffAugment (translation, cutout)", {"train.diffaug": "[translation,cutout]"}),
    "ema": ("+ EMA generator (0.99)", {"train.ema_decay": "0.99"}),
    "r1": ("+ R1 (gamma 0.1, every 4 steps)", {"train.r1_gamma": "0.1", "train.reg_every": "4"}),
    "encoder": ("+ encoder (L1 reconstruction)", {"train.encoder": "true"}),
    "uniform": ("uniform prior", {"train.prior": "uniform"}),
    "hinge": ("hinge loss", {"train.loss": "hinge"}),
    "wgan_gp": ("WGAN-GP (lambda 10, instance-norm D)",
                {"train.loss": "wgan", "train.gp_lambda": "10.0", "train.d_norm": "instance"}),
    "spectral": ("spectral-norm D", {"train.d_spectral": "true"}),
    "schedule": ("batch 32 -> 64 -> 128 (sqrt lr rule)",
                 {"train.batch_schedule": "[[0,32],[200,64],[500,128]]", "train.lr_scaling": "sqrt"}),
    "default": ("chosen default (params.yaml), DRS off", {"sample.drs": "false"}),
    "default_drs": ("chosen default (params.yaml), DRS on", {"sample.drs": "true"}),
}
COLUMNS = [("fid", "FID ↓"), ("is_mean", "IS ↑"), ("kid_mean", "KID ↓"), ("precision", "precision ↑"),
           ("recall", "recall ↑")]


FAST_EVAL = {"evaluate.recon_images": "0"}  # the table shows sample metrics; skip inversion


def overrides_for(row: str, shipped: dict) -> dict[str, str]:
    label, over = ROWS[row]
    if row.startswith("default"):
        return {**FAST_EVAL, **over}
    return {**OFF, **FAST_EVAL, **over}


def apply(params: dict, over: dict[str, str]) -> dict:
    out = json.loads(json.dumps(params))
    for key, value in over.items():
        section, name = key.split(".")
        out[section][name] = yaml.safe_load(value)
    return out


def seconds_per_step(raw: dict, images, warmup: int = 10, steps: int = 60) -> float:
    """Time ``steps`` training steps of this configuration in-process, after ``warmup`` steps."""
    from dcgan.config import parse_params

    p = parse_params(raw).train
    return train_speed.seconds_per_step(p, gan_config(p, images.shape[-1], images.shape[1]), images,
                                        warmup, steps)


def experiments() -> dict[str, dict]:
    """The newest finished DVC experiment of each name, on any commit (``dvc exp show -A``)."""
    shown = rt.dvc_json(["exp", "show", "-A"], Path("."))
    finished = sorted((e for r in shown for e in (r.get("experiments") or [])
                       if e.get("name") and e["revs"][0]["data"].get("timestamp")),
                      key=lambda e: e["revs"][0]["data"]["timestamp"])
    return {e["name"]: {**e["revs"][0]["data"], "rev": e["revs"][0].get("rev", "")} for e in finished}


def row_result(data: dict) -> dict:
    """What the table needs from one experiment: its evaluate metrics and training wall time."""
    metrics = data["metrics"]["reports/metrics.json"]["data"]
    live = data["metrics"]["dvclive/metrics.json"]["data"]["train"]
    keep = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    return {"metrics": keep, "train_s": live["wall_s"], "experiment": data.get("rev", "")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--budget", type=float, default=0.0,
                    help="training seconds per row (0: the shipped default's epochs x its step time)")
    ap.add_argument("--out", default="reports/ablation.md")
    ap.add_argument("--log", default="reports/ablation.json",
                    help="per-row calibration (epochs, ms/step); rows run earlier stay in the table")
    args = ap.parse_args()

    shipped = yaml.safe_load(Path("params.yaml").read_text())
    params = load_params("params.yaml")
    images = load_images("data/augmented/train.npy")
    n = len(images)
    bs = params.train.batch_size if params.train.batch_size != "auto" else 64
    steps_default = count_steps(n, params.train.epochs, params.train.batch_schedule, bs)
    budget = args.budget or steps_default * seconds_per_step(shipped, images)
    print(f"training budget per row: {budget:.0f} s", flush=True)

    log_path = Path(args.log)
    runs = json.loads(log_path.read_text()) if log_path.is_file() else {}
    for row in args.rows:
        over = overrides_for(row, shipped)
        raw = apply(shipped, over)
        sps = seconds_per_step(raw, images)
        steps_per_epoch = count_steps(n, 1, tuple(map(tuple, raw["train"]["batch_schedule"])), bs)
        epochs = max(1, math.floor(budget / (sps * steps_per_epoch) + 0.5))
        if row == "default_drs" and "default" in runs:  # DRS on/off: the very same trained model
            epochs, sps = runs["default"]["epochs"], runs["default"]["seconds_per_step"]
        over = {**over, "train.epochs": str(epochs)}
        name = f"abl-{row}"
        args_ = ["exp", "run", "--temp", "-n", name, "-f"]
        for key, value in over.items():
            args_ += ["-S", f"{key}={value}"]
        print(f"{row}: {sps * 1000:.0f} ms/step -> {epochs} epochs; dvc {' '.join(args_)}", flush=True)
        t0 = time.perf_counter()
        rt.check("dvc", args_, Path("."), lambda line: None)  # the one dvc runner (dcgan.retrain)
        data = experiments()[name]
        runs[row] = {"epochs": epochs, "seconds_per_step": sps, "budget_s": budget,
                     "wall_s": time.perf_counter() - t0, **row_result(data)}
        log_path.write_text(json.dumps(runs, indent=2) + "\n")

    # rows measured earlier that predate the stored metrics: take them from their experiments
    missing = [r for r in runs if "metrics" not in runs[r]]
    if missing:
        found = experiments()
        for r in missing:
            if f"abl-{r}" in found:
                runs[r].update(row_result(found[f"abl-{r}"]))
        log_path.write_text(json.dumps(runs, indent=2) + "\n")

    lines = ["| row | epochs | ms/step | train s | " + " | ".join(c for _, c in COLUMNS) + " | DRS acceptance |",
             "|---|---|---|---|" + "---|" * len(COLUMNS) + "---|"]
    table_rows = [r for r in ROWS if "metrics" in runs.get(r, {})]
    for row in table_rows:
        run = runs[row]
        m = run["metrics"]
        cells = " | ".join(f"{m[k]:.4g}" for k, _ in COLUMNS)
        drs = f"{m['drs_acceptance_rate']:.1%}" if "drs_acceptance_rate" in m else "—"
        lines.append(f"| {ROWS[row][0]} | {run['epochs']} | {run['seconds_per_step'] * 1000:.0f} | "
                     f"{run['train_s']:.0f} | {cells} | {drs} |")
    floor = runs[table_rows[0]]["metrics"]
    text = "\n".join([
        "# Ablation at equal training time",
        "",
        f"Each row trains for about {budget:.0f} s (epochs set from a measured step time) on the "
        f"default dataset and is scored by the evaluate stage (classifier extractor, "
        f"{floor['protocol.n_samples']} samples; floors: FID {floor['fid_floor']:.3g}, "
        f"IS {floor['is_mean_floor']:.3g}). Reproduce with `python benchmarks/ablation.py`; "
        "each row is a DVC experiment (`dvc exp show -A`); its numbers are kept in "
        "reports/ablation.json.",
        "",
        *lines,
        "",
    ])
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
