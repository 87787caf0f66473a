"""Can the evaluator see what the judge sees? The kept colour generators of benchmarks/vs_example.py
rescored in the judge's space and in two of the evaluator's: its embedding alone (its features
before issue 37) and its multi-scale features (each downsampling stage's channel mean and std, then
the embedding: what the evaluate stage uses since).

    python benchmarks/vs_example.py run ...          # keeps every run's best and last G in .ablation-cache/vs_example
    python benchmarks/evaluator_features.py          # -> reports/evaluator_features.json

Reports, for the EMA against no EMA (paired runs of the same seed and offline augmentation, each
scored on the generator the pipeline samples: the last with an EMA, else the best) the paired
difference in each space, and over every generator the rank agreement (Spearman) of each
evaluator space with the judge.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from scipy import stats  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import ganrun  # noqa: E402
import vs_example as vs  # noqa: E402
from ablation import machine  # noqa: E402
from seedstats import paired  # noqa: E402

from dcgan.app.recipe import gan_config  # noqa: E402
from dcgan.core.seeding import derive_seed  # noqa: E402
from dcgan.networks.gan import Generator  # noqa: E402
from dcgan.networks.sampling import generate  # noqa: E402

# (EMA run, the same seed's run without it): cache names as vs_example.py wrote them over time.
# "ema-N"/"shipped-N" are the ema_aug/dcgan_aug arms before they were named so; "mirror_ema-N" and
# "mirror-N" the ema_mirror/dcgan_mirror arms.
PAIRS = [("ema-2", "shipped-2", 2), ("ema-3", "shipped-3", 3), ("ema_aug-4", "dcgan_aug-4", 4),
         ("mirror_ema-0", "mirror-0", 0), ("mirror_ema-1", "mirror-1", 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=".ablation-cache/vs_example")
    ap.add_argument("--data-root", default=".ablation-data")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--out", default="reports/evaluator_features.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    st = vs.load_setting("colour", Path(args.data_root))
    cfg = gan_config(st.params.train, st.params.prepare.image_size,
                     st.params.prepare.channels, ganrun.data_stats(st.prepared))
    scores: dict[str, dict] = {}
    for ema, plain, seed in PAIRS:
        for name in (ema, plain):
            state = torch.load(Path(args.cache) / f"colour-5120-{name}.pt", weights_only=True)
            for w in ("best", "last"):
                g = Generator(cfg)
                g.load_state_dict(state[w])
                images = generate(g.eval(), args.samples, cfg.latent_dim, derive_seed(seed, "vs_sample"),
                                  torch.device("cpu"), 500)
                scores[f"{name}:{w}"] = vs.score(st, images)
                print(name, w, json.dumps({k: round(v, 4) for k, v in scores[f"{name}:{w}"].items()}), flush=True)
    spaces = {"judge": "judge_fid", "evaluator, embedding (before)": "fid", "evaluator, multi-scale (now)": "fid_ms"}
    out = {"machine": machine(), "samples": args.samples, "pairs": [p[:2] for p in PAIRS], "ema_minus_plain": {},
           "spearman_with_judge": {}, "scores": scores}
    judge = [s["judge_fid"] for s in scores.values()]
    for label, key in spaces.items():
        pr = paired([scores[f"{e}:last"][key] for e, _, _ in PAIRS], [scores[f"{p}:best"][key] for _, p, _ in PAIRS])
        out["ema_minus_plain"][label] = {"mean": pr.mean, "half_width": pr.half_width, "p": pr.p,
                                         "verdict": pr.verdict()}
        if key != "judge_fid":
            out["spearman_with_judge"][label] = float(stats.spearmanr(judge, [s[key] for s in scores.values()])[0])
        print(f"{label}: EMA - no EMA {pr.mean:+.3g} ± {pr.half_width:.2g}, {pr.verdict()}"
              + (f"; Spearman with the judge {out['spearman_with_judge'][label]:.2f}" if key != "judge_fid" else ""))
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
