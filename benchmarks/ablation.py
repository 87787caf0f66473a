"""Ablation of the DCGAN-recipe techniques at equal training time, as DVC experiments, over seeds.

    python benchmarks/ablation.py                 # all rows, one seed (about 5 minutes each on 2 CPU cores)
    python benchmarks/ablation.py --rows plain default default_drs hinge --seeds 3 --budget 80
    python benchmarks/ablation.py --rows meanstd k2_mean k2_softmax k3_mean k3_softmax --seeds 3 --budget 80
    python benchmarks/ablation.py --rows          # no runs: rewrite the table from reports/ablation.json

For each row: a short in-process calibration measures seconds per training step with that
row's switches, ``train.epochs`` is set so that training takes about the budget (the default
run's training time unless ``--budget`` is given), and the row runs as one DVC experiment per
seed (``dvc exp run --temp -n abl-<row>-s<seed> -S base.seed=<seed> -S ...``, seeds 0..N-1), so
`dvc exp show -A` lists every run with its params and metrics. ``default`` and ``default_drs`` (R1, the
default before the seed study) train the very same model (same seed and epochs; training is deterministic) and differ in
``sample.drs`` only. The ``bf16`` row runs only where ``train.precision: auto`` would pick bf16
(elsewhere bf16 is emulated and many times slower; ``--force-bf16`` runs it anyway).

The table (reports/ablation.md) gives each row's FID and IS as mean ± 95% confidence interval
over its seeds (Student t), the other metrics as means, and whether the row's FID and IS differ
from plain DCGAN's beyond the seed noise (Welch's t-test, p < 0.05; only against plain runs of
the same budget, with 2+ seeds on both sides). Rows run once are marked "1 seed". Every run's
numbers are kept in reports/ablation.json (rows not rerun stay in the table; a row rerun with
another budget replaces its earlier runs). Text after the ``NOTES`` marker line in the
existing reports/ablation.md (the reasons for the shipped default) is kept.
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
from seedstats import spread, verdict, welch_p

from dcgan import retrain as rt
from dcgan.config import load_params
from dcgan.data.arrays import channel_stats, load_images
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
    # R1 with BCE was the shipped default until the 3-seed table (reports/ablation.md) found no gain
    "default": ("R1 γ 0.1 (the earlier default), DRS off",
                {"train.r1_gamma": "0.1", "train.reg_every": "4", "sample.drs": "false"}),
    "default_drs": ("R1 γ 0.1 (the earlier default), DRS on",
                    {"train.r1_gamma": "0.1", "train.reg_every": "4", "sample.drs": "true"}),
    "bf16": ("shipped params.yaml, bf16 autocast", {"train.precision": "bf16"}),
    "meanstd": ("mean/std input normalisation", {"train.normalize": "meanstd"}),
    "k2_mean": ("2 discriminators, mean loss", {"train.discriminators": "2", "train.d_aggregate": "mean"}),
    "k2_softmax": ("2 discriminators, GMAN softmax (λ 1)",
                   {"train.discriminators": "2", "train.d_aggregate": "softmax", "train.d_temperature": "1.0"}),
    "k3_mean": ("3 discriminators, mean loss", {"train.discriminators": "3", "train.d_aggregate": "mean"}),
    "k3_softmax": ("3 discriminators, GMAN softmax (λ 1)",
                   {"train.discriminators": "3", "train.d_aggregate": "softmax", "train.d_temperature": "1.0"}),
}
ON_DEFAULT = {"bf16"}  # rows that start from the shipped params (the others from OFF)
NOTES = "<!-- NOTES: text below this line is kept when benchmarks/ablation.py rewrites the table -->"
COLUMNS = [("fid", "FID ↓"), ("is_mean", "IS ↑"), ("kid_mean", "KID ↓"), ("precision", "precision ↑"),
           ("recall", "recall ↑")]


FAST_EVAL = {"evaluate.recon_images": "0"}  # the table shows sample metrics; skip inversion


def overrides_for(row: str, shipped: dict) -> dict[str, str]:
    label, over = ROWS[row]
    if row in ON_DEFAULT:
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
    cfg = gan_config(p, images.shape[-1], images.shape[1], channel_stats(images))  # stats: meanstd
    return train_speed.seconds_per_step(p, cfg, images, warmup, steps)


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
    keep = {k: v for k, v in metrics.items()
            if isinstance(v, (int, float)) or k == "protocol.train_precision"}
    return {"metrics": keep, "train_s": live["wall_s"], "experiment": data.get("rev", "")}


def seed_runs(entry: dict) -> dict[str, dict]:
    """A row's runs by seed; entries written before ``--seeds`` existed are seed 0."""
    if "seeds" in entry:
        return entry["seeds"]
    if "metrics" in entry:
        keep = ("metrics", "train_s", "experiment")
        return {"0": {k: entry[k] for k in keep if k in entry}}
    return {}


def cell(values: list[float]) -> str:
    return str(spread(values)) if len(values) > 1 else f"{values[0]:.4g} (1 seed)"


def table(runs: dict) -> list[str]:
    cols = "| row | seeds | budget s | epochs | ms/step | FID ↓ | IS ↑ | KID ↓ | precision ↑ | recall ↑ | " \
           "DRS acceptance | FID vs plain | IS vs plain | trained in |"
    lines = [cols, "|" + "---|" * (cols.count("|") - 1)]
    plain = runs.get("plain", {})
    plain_runs = list(seed_runs(plain).values())
    for row in ROWS:
        entry = runs.get(row)
        if not entry or not seed_runs(entry):
            continue
        rs = list(seed_runs(entry).values())
        val = lambda k, rs=rs: [r["metrics"][k] for r in rs if k in r["metrics"]]  # noqa: E731
        means = " | ".join(f"{sum(val(k)) / len(val(k)):.4g}" for k in ("kid_mean", "precision", "recall"))
        drs = val("drs_acceptance_rate")
        same_budget = plain.get("budget_s") == entry.get("budget_s")
        vs = []
        for k in ("fid", "is_mean"):
            if row == "plain":
                vs.append("—")
            elif not same_budget:
                vs.append("n/a (other budget)")
            elif len(rs) < 2 or len(plain_runs) < 2:
                vs.append("n/a (1 seed)")
            else:
                vs.append(verdict(welch_p(val(k), [r["metrics"][k] for r in plain_runs])))
        prec = sorted({str(r["metrics"].get("protocol.train_precision", "fp32")) for r in rs})
        lines.append(f"| {ROWS[row][0]} | {len(rs)} | {entry['budget_s']:.0f} | {entry['epochs']} | "
                     f"{entry['seconds_per_step'] * 1000:.0f} | {cell(val('fid'))} | {cell(val('is_mean'))} | "
                     f"{means} | {f'{sum(drs) / len(drs):.1%}' if drs else '—'} | {vs[0]} | {vs[1]} | "
                     f"{'/'.join(prec)} |")
    return lines


def render(runs: dict, old_text: str) -> str:
    some = next(r for e in runs.values() for r in seed_runs(e).values())["metrics"]
    notes = old_text.split(NOTES, 1)[1].strip("\n") if NOTES in old_text else ""
    return "\n".join([
        "# Ablation at equal training time, over seeds",
        "",
        "Each row trains for about its budget (epochs set from a measured step time) on the default "
        "dataset and is scored by the evaluate stage (classifier extractor, "
        f"{some['protocol.n_samples']} samples; floors: FID {some['fid_floor']:.3g}, "
        f"IS {some['is_mean_floor']:.3g}; reconstruction skipped). FID and IS: mean ± 95% confidence "
        "interval over the row's seeds (`base.seed` 0..N-1; Student t). *vs plain*: Welch's t-test "
        "against the plain DCGAN runs of the same budget (differs: p < 0.05). A row marked "
        "\"1 seed\" was run once and cannot be told from its neighbours. Reproduce with "
        "`python benchmarks/ablation.py --rows plain default default_drs hinge --seeds 3 --budget 80` "
        "and `... --rows meanstd k2_mean k2_softmax k3_mean k3_softmax --seeds 3 --budget 80`; "
        "each run is a DVC experiment (`dvc exp show -A`, names `abl-<row>-s<seed>`; single-seed rows "
        "`abl-<row>`); all numbers are in reports/ablation.json.",
        "",
        *table(runs),
        "",
        NOTES,
        *([notes] if notes else []),
        "",
    ])


def bf16_available() -> tuple[bool, str]:
    import torch

    from dcgan.devices import resolve_precision

    got, why = resolve_precision("auto", torch.device("cpu"))
    return got == "bf16", why


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--seeds", type=int, default=1, help="runs per row, with base.seed 0..N-1")
    ap.add_argument("--budget", type=float, default=0.0,
                    help="training seconds per row (0: the shipped default's epochs x its step time)")
    ap.add_argument("--force-bf16", action="store_true", help="run the bf16 row on a CPU without bf16 units")
    ap.add_argument("--out", default="reports/ablation.md")
    ap.add_argument("--log", default="reports/ablation.json",
                    help="every run's numbers; rows run earlier stay in the table")
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")

    shipped = yaml.safe_load(Path("params.yaml").read_text())
    log_path = Path(args.log)
    runs = json.loads(log_path.read_text()) if log_path.is_file() else {}
    rows = list(args.rows)
    if "bf16" in rows and not args.force_bf16:
        ok, why = bf16_available()
        if not ok:
            print(f"bf16 row skipped: {why} (--force-bf16 runs it anyway)", flush=True)
            rows.remove("bf16")
    if rows:
        params = load_params("params.yaml")
        images = load_images("data/augmented/train.npy")
        n = len(images)
        bs = params.train.batch_size if params.train.batch_size != "auto" else 64
        steps_default = count_steps(n, params.train.epochs, params.train.batch_schedule, bs)
        budget = args.budget or steps_default * seconds_per_step(shipped, images)
        print(f"training budget per row: {budget:.0f} s; seeds 0..{args.seeds - 1}", flush=True)
    for row in rows:
        over = overrides_for(row, shipped)
        raw = apply(shipped, over)
        if row == "default_drs" and "default" in runs and runs["default"].get("budget_s") == round(budget):
            # DRS on/off: the very same trained model
            epochs, sps = runs["default"]["epochs"], runs["default"]["seconds_per_step"]
        else:
            sps = seconds_per_step(raw, images)
            steps_per_epoch = count_steps(n, 1, tuple(map(tuple, raw["train"]["batch_schedule"])), bs)
            epochs = max(1, math.floor(budget / (sps * steps_per_epoch) + 0.5))
        entry = runs.get(row, {})
        if entry.get("budget_s") != round(budget) or entry.get("epochs") != epochs or "seeds" not in entry:
            entry = {"epochs": epochs, "seconds_per_step": round(sps, 4), "budget_s": round(budget), "seeds": {}}
        runs[row] = entry
        for seed in range(args.seeds):
            over_s = {**over, "train.epochs": str(epochs), "base.seed": str(seed)}
            name = f"abl-{row}-s{seed}"
            args_ = ["exp", "run", "--temp", "-n", name, "-f"]
            for key, value in over_s.items():
                args_ += ["-S", f"{key}={value}"]
            print(f"{row} seed {seed}: {sps * 1000:.0f} ms/step -> {epochs} epochs; dvc {' '.join(args_)}",
                  flush=True)
            t0 = time.perf_counter()
            rt.check("dvc", args_, Path("."), lambda line: None)  # the one dvc runner (dcgan.retrain)
            entry["seeds"][str(seed)] = {**row_result(experiments()[name]), "wall_s": round(time.perf_counter() - t0, 1)}
            m = entry["seeds"][str(seed)]["metrics"]
            print(f"  FID {m['fid']:.4f}, IS {m['is_mean']:.3f}", flush=True)
            log_path.write_text(json.dumps(runs, indent=2) + "\n")

    out = Path(args.out)
    text = render(runs, out.read_text() if out.is_file() else "")
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
