"""Does bf16 cost quality? The default pipeline's training and scoring, in fp32 and in bf16
autocast, over several seeds at equal steps; FID/IS as mean ± 95% CI and Welch's test.

    python benchmarks/precision_seeds.py --device cuda                # 3 seeds, fp32 and bf16
    python benchmarks/precision_seeds.py --seeds 0 1 2 3 4 --out reports/precision_seeds.json

Needs the outputs of `make repro`'s first stages: data/augmented/train.npy, data/prepared and
models/evaluator (the classifier extractor). For each seed (``base.seed``) and precision it runs
what the train stage runs, in this process (``dcgan.training.loop.train`` with the shipped
``train`` params, in-training FID every ``train.eval_every`` epochs keeping the best generator),
then scores the best generator as the evaluate stage does (``evaluate.num_samples`` images, 0 =
as many as the held-out set; the shipped extractor; FID and IS against the training set's
reference). Samples are drawn without DRS, so the numbers isolate the training. No DVC or
dvclive is needed, so it also runs on a bare GPU machine (``PYTHONPATH=src``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ganrun  # noqa: E402
from seedstats import spread, verdict, welch_p  # noqa: E402

from dcgan.app.params.whole import load_params  # noqa: E402
from dcgan.core.devices import pick_device  # noqa: E402
from dcgan.core.seeding import derive_seed  # noqa: E402
from dcgan.data.arrays import load_images  # noqa: E402
from dcgan.metrics.reference import load_reference, make_extractor  # noqa: E402
from dcgan.metrics.sets import FeatureSet  # noqa: E402
from dcgan.metrics.suite import score  # noqa: E402
from dcgan.networks.sampling import generate  # noqa: E402


def one_run(params, precision: str, seed: int, images, device, args) -> dict:
    params = ganrun.with_seed(params, seed, precision=precision)
    ev = params.evaluate
    t = ganrun.train_run(params, images, device, args.evaluator, args.prepared, f"{precision}-{seed}")
    ref, hold_fs, _ = load_reference(args.evaluator, args.prepared, params.evaluator.extractor)
    n = ev.num_samples or len(hold_fs.features)
    extractor = make_extractor(params.evaluator.extractor, args.evaluator, params.evaluator.inception_weights,
                               ev.batch_size, device)
    samples = generate(t.g, n, t.g.cfg.latent_dim, derive_seed(seed, "sample"), device, ev.batch_size)
    m = score(FeatureSet(*extractor(samples, "features")), hold_fs, ref, ("fid", "is"), ev, seed, n,
              warn=lambda msg: None)
    fids = [row["fid"] for row in t.trajectory]
    return {"precision": precision, "seed": seed, "steps": t.steps, "train_s": t.train_s,
            "best_fid_in_training": min(fids) if fids else None, "fid": m["fid"], "is_mean": m["is_mean"],
            "fid_floor": m["fid_floor"], "n_samples": n}


def summary(runs: list[dict], precisions: list[str]) -> str:
    lines = ["| precision | seeds | FID ↓ (mean ± 95% CI) | IS ↑ | train s | vs fp32: FID | vs fp32: IS |",
             "|---|---|---|---|---|---|---|"]
    by = {pr: [r for r in runs if r["precision"] == pr] for pr in precisions}
    base = by.get("fp32", [])
    for pr, rs in by.items():
        if not rs:
            continue
        col = lambda k, rs=rs: [r[k] for r in rs]  # noqa: E731
        cmp = ["—", "—"] if pr == "fp32" else [verdict(welch_p(col(k), [r[k] for r in base]))
                                               for k in ("fid", "is_mean")]
        lines.append(f"| {pr} | {', '.join(str(r['seed']) for r in rs)} | {spread(col('fid'))} | "
                     f"{spread(col('is_mean'))} | {spread(col('train_s'))} | {cmp[0]} | {cmp[1]} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda (as base.device)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data/augmented/train.npy")
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--evaluator", default="models/evaluator")
    ap.add_argument("--out", default="", help="JSON file for every run (written after each)")
    args = ap.parse_args()
    params = load_params(args.params)
    device = pick_device(args.device)
    images = load_images(args.data, channels=params.prepare.channels, size=params.prepare.image_size)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    print(f"torch {torch.__version__}, device {device} ({name}); {len(images)} training images, "
          f"{params.train.epochs} epochs per run", flush=True)
    runs: list[dict] = []
    for seed in args.seeds:  # precisions alternate, so that drifts in machine speed hit both
        for precision in args.precisions:
            runs.append(one_run(params, precision, seed, images, device, args))
            r = runs[-1]
            print(f"seed {seed} {precision}: {r['steps']} steps in {r['train_s']:.1f} s, FID {r['fid']:.4f}, "
                  f"IS {r['is_mean']:.3f} (in-training best FID {r['best_fid_in_training']:.4f})", flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps({"device": name, "torch": torch.__version__,
                                                      "runs": runs}, indent=2) + "\n")
    print()
    print(summary(runs, args.precisions))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
