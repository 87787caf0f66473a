"""The shipped colour recipe against the official example's plain DCGAN loop, at equal seconds, on
the ablation's colour setting (real 32×32 colour photos; benchmarks/ablation_data.py builds it).

    python benchmarks/colour_vs_example.py --seeds 3     # about 12 minutes on 2 cores

For each seed:

- **ours**: what the train stage trains for that data with params.yaml as shipped (the train
  section's ``auto`` keys resolved for 3 channels, as the stage resolves them; in-training FID
  and best-generator selection included, as in the pipeline), on the augmented training set;
  its wall time T is the budget;
- **the example**: benchmarks/train_speed.py's copy of pytorch/examples' dcgan/main.py loop and
  networks (ngf = ndf = 64, nz = 100, batch 64, Adam 2e-4/0.5, BCE, no augmentation) on the same
  prepared photos, stepped until T seconds have passed; it samples as the example draws its
  grid (G in train mode, batches of 64).

Both draw 2,000 images, scored by the evaluate stage's extractor and by the independent judge
(another classifier, another seed and split; ablation_data.py) against the same training
images: FID, IS, and the ratio ours / example. Run it on a quiet machine: it compares seconds.
Writes reports/colour_vs_example.json and the two sample grids of seed 0 (docs/figures/).
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ganrun  # noqa: E402
from ablation import SettingCtx, machine  # noqa: E402
from seedstats import spread  # noqa: E402
from train_speed import Reference  # noqa: E402

from dcgan.app.recipe import resolve_recipe  # noqa: E402
from dcgan.base.devices import pick_device  # noqa: E402
from dcgan.base.images import save_grid  # noqa: E402
from dcgan.base.seeding import derive_seed  # noqa: E402


def example_run(images: np.ndarray, seconds: float, seed: int, n: int) -> tuple[np.ndarray, int]:
    """The example's loop for ``seconds`` on ``images``: (n uint8 samples, steps taken)."""
    torch.manual_seed(seed)
    ref = Reference(images, nz=100, ngf=64, ndf=64, batch=64)
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        ref.step()
        steps += 1
    out = []
    with torch.no_grad():  # as the example draws its fake grid: netG in train mode, 64 at a time
        for _ in range(0, n, 64):
            x = ref.netG(torch.randn(64, 100, 1, 1))
            out.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy())
    return np.concatenate(out)[:n], steps


def score(sc: SettingCtx, images: np.ndarray, seed: int) -> dict[str, float]:
    m = sc.scorer.score(images, seed, 0)
    j = sc.judge.score(images, seed, 0)
    return {"fid": m["fid"], "is": m["is_mean"], "judge_fid": j["fid"], "judge_is": j["is_mean"]}


def write(out: Path, recipe: dict, runs: list[dict]) -> dict:
    """reports/colour_vs_example.json from the runs so far; returns its summary."""
    summary: dict = {}
    for key in ("fid", "is", "judge_fid", "judge_is"):
        ratios = [r["ours"][key] / r["example"][key] for r in runs]
        summary[key] = {"ours": str(spread([r["ours"][key] for r in runs])),
                        "example": str(spread([r["example"][key] for r in runs])),
                        "ratio_ours_over_example": str(spread(ratios))}
    for key in ("is", "judge_is"):
        summary[key]["seeds_ours_higher"] = f"{sum(r['ours'][key] > r['example'][key] for r in runs)} of {len(runs)}"
    doc = {"machine": machine(), "threads": torch.get_num_threads(), "recipe": recipe, "summary": summary,
           "runs": runs}
    out.write_text(json.dumps(doc, indent=1, default=list) + "\n")
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=0, help="train.epochs for our side (0: params.yaml's)")
    ap.add_argument("--data-root", default=".ablation-data")
    ap.add_argument("--out", default="reports/colour_vs_example.json")
    ap.add_argument("--figures", default="docs/figures")
    ap.add_argument("--rerun", action="store_true",
                    help="train every seed again (default: seeds already in --out for this recipe are kept)")
    args = ap.parse_args()
    device = pick_device("cpu")
    sc = SettingCtx.load("colour", Path(args.data_root), device)
    p = resolve_recipe(sc.params.train, sc.params.prepare.channels)
    if args.epochs:  # a short smoke run: exactly these epochs
        p = dataclasses.replace(p, epochs=args.epochs, min_steps=0)
    recipe = {k: getattr(p, k) for k in ("r1_gamma", "g_width", "d_width", "ema_decay", "ema_rampup", "diffaug",
                                         "epochs", "min_steps")}
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() and not args.rerun else {}
    same = json.loads(json.dumps(old.get("recipe"), default=list)) == json.loads(json.dumps(recipe, default=list))
    runs = [r for r in old.get("runs", []) if same and r["seed"] < args.seeds]
    for seed in range(args.seeds):
        if any(r["seed"] == seed for r in runs):
            print(f"seed {seed}: kept from {out}", flush=True)
            continue
        params = ganrun.with_seed(dataclasses.replace(sc.params, train=p), seed)
        t0 = time.perf_counter()
        trained = ganrun.train_run(params, sc.images["train"], device, sc.evaluator, sc.prepared, f"ours-{seed}")
        seconds = time.perf_counter() - t0
        ours, _ = ganrun.draw(trained, args.samples, derive_seed(seed, "ablation_sample"), device,
                              params.sample, False)
        theirs, steps = example_run(sc.images["prepared"], seconds, seed, args.samples)
        r = {"seed": seed, "seconds": round(seconds, 1), "ours_steps": trained.steps, "example_steps": steps,
             "ours": score(sc, ours, seed), "example": score(sc, theirs, seed)}
        runs.append(r)
        runs.sort(key=lambda r: r["seed"])
        print(json.dumps(r), flush=True)
        write(out, recipe, runs)  # after every seed: a run cut short keeps what it finished
        if seed == 0:
            Path(args.figures).mkdir(parents=True, exist_ok=True)
            save_grid(ours[:64], Path(args.figures) / "colour_ours.png", upscale=2)
            save_grid(theirs[:64], Path(args.figures) / "colour_example.png", upscale=2)
    print(json.dumps(write(out, recipe, runs), indent=1))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
