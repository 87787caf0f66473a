"""How often ``dcgan review`` says "worse" when nothing changed: unchanged retrains (the shipped
params.yaml retrained with other seeds, as `dvc exp run -S base.seed=K` would), each pair
reviewed with the review's own code (docs/review.md quotes the numbers).

    dvc repro                                                   # data/, models/evaluator
    python benchmarks/review_noise.py train --seeds 0 2 4 ...   # each: train, sample, evaluate stages
    python benchmarks/review_noise.py train --seeds 1 3 5 ...   # (a second process)
    python benchmarks/review_noise.py study                     # -> reports/review_noise.json

Each seed runs the pipeline's own train, sample and evaluate stages (``python -m
dcgan.app.stages.*``) on the workspace's data and evaluator, with ``base.seed`` set, into
``.ablation-cache/review-noise/s<K>/`` (a rerun keeps what is there). The study then reviews
both orders of every pair of runs (base i, head j and base j, head i) as ``dcgan review`` does: its FID by the
standard errors alone (what CI sees without the base's features) and by the paired test on both
runs' features (what a clone with both in its DVC cache sees), each with and without the
retrain noise (``--retrain-sd``) estimated from the runs' own spread, and counts the verdicts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import machine  # noqa: E402

from dcgan.app.retrain.paired import features_match, paired_fid_gain  # noqa: E402
from dcgan.app.retrain.rescore import diff_of  # noqa: E402
from dcgan.app.review import NOISE_PROTOCOL  # noqa: E402
from dcgan.app.review.verdict import judge  # noqa: E402
from dcgan.metrics.registry import gate_keys  # noqa: E402

CACHE = Path(".ablation-cache/review-noise")


def stage(module: str, params: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", f"dcgan.app.stages.{module}", "--params", str(params), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")


def train(args) -> int:
    base = yaml.safe_load(Path(args.params).read_text())
    for seed in args.seeds:
        out = CACHE / f"s{seed}"
        if (out / "metrics.json").is_file():
            continue
        out.mkdir(parents=True, exist_ok=True)
        params = {**base, "base": {**base["base"], "seed": seed}}
        p = out / "params.yaml"
        p.write_text(yaml.safe_dump(params, sort_keys=False))
        t0 = time.perf_counter()
        stage("train", p, "--data", "data/augmented/train.npy", "--out", str(out / "gan"), "--checkpoints",
              str(out / "ckpt"), "--live", str(out / "live"), "--evaluator", "models/evaluator",
              "--prepared", "data/prepared")
        t1 = time.perf_counter()
        stage("sample", p, "--models", str(out / "gan"), "--out", str(out / "samples.npy"), "--grid",
              str(out / "samples.png"), "--interpolation", str(out / "interpolation.png"))
        stage("evaluate", p, "--samples", str(out / "samples.npy"), "--data", "data/prepared", "--evaluator",
              "models/evaluator", "--models", str(out / "gan"), "--out", str(out / "metrics.part.json"),
              "--recon-grid", str(out / "recon.png"), "--copies-grid", str(out / "copies.png"),
              "--features", str(out / "features.npy"))
        (out / "metrics.part.json").replace(out / "metrics.json")
        print(f"seed {seed}: trained in {t1 - t0:.0f} s, sampled and evaluated in {time.perf_counter() - t1:.0f} s",
              flush=True)
    return 0


def study(args) -> int:
    runs = {int(d.name[1:]): d for d in sorted(CACHE.glob("s*")) if (d / "metrics.json").is_file()}
    seeds = sorted(runs)
    if len(seeds) < 3:
        raise SystemExit(f"{len(seeds)} runs in {CACHE}: train more first")
    metrics = {k: json.loads((runs[k] / "metrics.json").read_text()) for k in seeds}
    reference = Path("models/evaluator/reference.npz")
    feats = {}
    for k in seeds:
        f = np.load(runs[k] / "features.npy", allow_pickle=False)
        if not features_match(f, metrics[k]["fid"], reference, metrics[k].get("protocol.n_samples")):
            raise SystemExit(f"seed {k}: its features do not reproduce its FID (another evaluator?)")
        feats[k] = f
    spread = {key: retrain_spread([metrics[k] for k in seeds], key) for key in gate_keys()}
    retrain_sd = {k: v["retrain_sd"] for k, v in spread.items()}
    pairs = list(itertools.combinations(seeds, 2))
    rng = np.random.default_rng(0)
    tested = set(pairs) if not args.paired_pairs or args.paired_pairs >= len(pairs) else {
        pairs[i] for i in rng.choice(len(pairs), args.paired_pairs, replace=False)}
    ways = {"standard errors": (False, False), "standard errors + retrain noise": (False, True),
            "paired": (True, False), "paired + retrain noise": (True, True)}
    counts = {w: {key: {} for key in gate_keys()} for w in ways}
    t0 = time.perf_counter()
    for n, (i, j) in enumerate(pairs):
        both_ways = None
        if (i, j) in tested:  # one paired test each way serves both reviews: (base i, head j), (base j, head i)
            up = paired_fid_gain(feats[j], feats[i], reference, 0.0, args.resamples, 0, lambda _: None)
            down = paired_fid_gain(feats[i], feats[j], reference, 0.0, args.resamples, 1, lambda _: None)
            both_ways = {(i, j): (up, down), (j, i): (down, up)}
        for base, head in ((i, j), (j, i)):
            diff = diff_of(metrics[base], metrics[head])
            for way, (use_paired, use_sd) in ways.items():
                if use_paired and both_ways is None:
                    continue
                rv = judge(diff, "fid", 0.05, None, both_ways[(base, head)] if use_paired else None,
                           retrain_sd if use_sd else None)
                for v in rv.verdicts:
                    # the paired test is FID's alone: the other metrics' verdicts are the standard errors'
                    if use_paired and v.metric != "fid":
                        continue
                    counts[way][v.metric][v.word] = counts[way][v.metric].get(v.word, 0) + 1
        if n % 10 == 0:
            print(f"  {n + 1}/{len(pairs)} pairs, {time.perf_counter() - t0:.0f} s", flush=True)

    def summary(c: dict) -> dict | None:
        total = sum(c.values())
        if not total:
            return None
        worse = c.get("worse", 0)
        lo, hi = wilson(worse, total)
        return {"counts": c, "pairs": total, "worse_rate": worse / total, "worse_ci95": [lo, hi]}

    out = {"machine": machine(), "runs": seeds, "pairs": len(pairs), "paired_pairs": len(tested),
           "resamples": args.resamples,
           "n_samples": metrics[seeds[0]].get("protocol.n_samples"), "spread": spread,
           # what dcgan review checks before it uses retrain_sd: runs measured like these, on the same data
           "protocol": {k: metrics[seeds[0]].get(f"protocol.{k}") for k in NOISE_PROTOCOL},
           "retrain_sd": retrain_sd,
           "fid": {k: metrics[k]["fid"] for k in seeds},
           "verdicts": {w: {key: summary(c) for key, c in by.items()} for w, by in counts.items()},
           "note": "both reviews (base i, head j) and (base j, head i) of each pair of unchanged retrains (other "
                   "seeds), as dcgan review does them; the pairs share runs, so they are not independent (the "
                   "interval is a guide)"}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for way in ways:
        print(way, {k: f"{v['worse_rate']:.1%} of {v['pairs']}" for k, v in out["verdicts"][way].items() if v})
    print("retrain sd:", {k: round(v, 4) for k, v in retrain_sd.items()})
    return 0


def retrain_spread(runs: list[dict], key: str) -> dict:
    """The retrain noise of ``key``: the variance over unchanged retrains that their sampling noise
    (the mean squared bootstrap standard error) does not explain. ``retrain_sd`` takes the
    variance's one-sided 95% upper bound (chi-square, n - 1 degrees of freedom), so that a review
    using it stays at its level although the spread is itself estimated from n runs."""
    from scipy.stats import chi2

    values = np.array([m[key] for m in runs], dtype=np.float64)
    n, var = len(values), float(values.var(ddof=1))
    se2 = float(np.mean([m[f"{key}_se"] ** 2 for m in runs]))
    upper = (n - 1) * var / float(chi2.ppf(0.05, n - 1))
    sd = math.sqrt(max(upper - se2, 0.0))
    # the change a review with standard errors and this retrain noise calls worse 80% of the time
    detectable = (1.6449 + 0.8416) * math.sqrt(2 * se2 + 2 * sd * sd)
    return {"sd_over_runs": math.sqrt(var), "mean_se": math.sqrt(se2),
            "retrain_sd_point": math.sqrt(max(var - se2, 0.0)), "retrain_sd": sd, "detectable_80": detectable}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["train", "study"])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(21)))
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--resamples", type=int, default=200, help="paired bootstrap rounds (the review's: 500)")
    ap.add_argument("--paired-pairs", type=int, default=0,
                    help="test FID paired on this many pairs, drawn at random (0: all; the rest: standard errors only)")
    ap.add_argument("--out", default="reports/review_noise.json")
    args = ap.parse_args()
    return {"train": train, "study": study}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
