"""How often the promotion gate is fooled by noise, and how often it sees a real gain, measured
on the default pipeline (docs/deployment.md quotes the numbers).

    dvc repro && python benchmarks/gate_noise.py            # about 3 minutes on 2 cores

Every score is what the evaluate stage computes: n generated images (as many as the held-out
set) through the evaluator's extractor, FID against the training set's reference features.

- **False promotions** (the noise the gate's test models: the samples and the reference): the
  champion is the shipped model (models/gan) scored on one draw of n images; each candidate is
  *the same model* scored on a fresh draw (another sampling seed), ``--trials`` times. Every
  promotion is a false one. The champion's one draw may be lucky or unlucky, which moves
  today's rate; so ``--trials`` fresh pairs (both sides drawn anew) are gated too. Today's gate (promote when the candidate's single FID is lower)
  and the new one (paired bootstrap, one-sided, alpha 0.05) judge the same pairs.
- **Power**: the champion is a model trained for half the shipped length (same seed, same
  recipe: clearly worse), the candidate the shipped model, each trial on fresh draws of both.
- **Retrains of the unchanged recipe** (``--retrains K``, optional, minutes each): K models
  trained with other seeds, each gated against the shipped model. The gate tests *models*, so
  a retrain that really is better (seed-to-seed spread is larger than the estimator's) may be
  promoted; the rate is reported, not bounded.

Writes reports/gate_noise.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ganrun  # noqa: E402
from ablation import machine  # noqa: E402

from dcgan.app.params.whole import load_params  # noqa: E402
from dcgan.app.retrain.gate import ALPHA, PairedGain, decide  # noqa: E402
from dcgan.base.devices import pick_device  # noqa: E402
from dcgan.base.seeding import derive_seed  # noqa: E402
from dcgan.data.arrays import load_images  # noqa: E402
from dcgan.metrics.fid import feature_stats, frechet_distance  # noqa: E402
from dcgan.metrics.reference import load_reference, make_extractor  # noqa: E402
from dcgan.metrics.uncertainty import paired_fid  # noqa: E402
from dcgan.networks.model_dir import load_generator  # noqa: E402
from dcgan.networks.sampling import generate  # noqa: E402


class Bench:
    def __init__(self, params, evaluator: str, prepared: str, device: torch.device) -> None:
        ev = params.evaluator
        self.ref, hold, _ = load_reference(evaluator, prepared, ev.extractor)
        self.n = params.evaluate.num_samples or len(hold.features)
        self.extractor = make_extractor(ev.extractor, evaluator, ev.inception_weights, params.evaluate.batch_size,
                                        device)
        self.device, self.batch = device, params.sample.batch_size

    def features(self, g, seed: int) -> np.ndarray:
        images = generate(g, self.n, g.cfg.latent_dim, seed, self.device, self.batch)
        return self.extractor(images, "features")[0]

    def fid(self, feats: np.ndarray) -> float:
        return frechet_distance(*feature_stats(feats), self.ref.mu, self.ref.sigma)

    def gate(self, cand: np.ndarray, champ: np.ndarray, resamples: int, seed: int) -> dict:
        """Both gates on one pair: today's (single numbers) and the paired test's decision."""
        old, new = self.fid(champ), self.fid(cand)
        t = paired_fid(cand, champ, self.ref.features, resamples, seed)
        diff = {"fid": {"old": old, "new": new}}
        c = decide(diff, "fid", 0.0, PairedGain(t.gain, t.low, t.high, t.p_value, t.resamples))
        return {"champion_fid": old, "candidate_fid": new, "p_value": t.p_value, "gain": t.gain,
                "naive_promotes": bool(new < old), "gate_promotes": c.promote}


def rate(rows: list[dict], key: str) -> dict:
    k = sum(r[key] for r in rows)
    return {"promoted": k, "trials": len(rows), "rate": k / len(rows)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=40, help="false-promotion trials (fresh draws of one model)")
    ap.add_argument("--power-trials", type=int, default=20, help="trials of a clearly better model")
    ap.add_argument("--retrains", type=int, default=0, help="also gate this many retrains of the recipe")
    ap.add_argument("--resamples", type=int, default=500, help="bootstrap rounds per paired test (the flow's)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", default="models/gan")
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--train-data", default="data/augmented/train.npy")
    ap.add_argument("--evaluator", default="models/evaluator")
    ap.add_argument("--out", default="reports/gate_noise.json")
    args = ap.parse_args()
    device = pick_device("cpu")
    params = load_params(args.params)
    b = Bench(params, args.evaluator, args.prepared, device)
    shipped = load_generator(args.models, device, params.sample.generator)
    seed = params.base.seed
    t0 = time.perf_counter()
    champ = b.features(shipped, seed)  # the sample stage's own draw
    false = [b.gate(b.features(shipped, derive_seed(seed, "gate_trial", t)), champ, args.resamples, t)
             for t in range(args.trials)]
    print(f"false promotions: today's gate {rate(false, 'naive_promotes')}, paired gate {rate(false, 'gate_promotes')}",
          flush=True)
    # the champion's one draw may be lucky or unlucky; fresh pairs show the rate over both
    pairs = [b.gate(b.features(shipped, derive_seed(seed, "gate_pair_candidate", t)),
                    b.features(shipped, derive_seed(seed, "gate_pair_champion", t)), args.resamples, t)
             for t in range(args.trials)]
    print(f"fresh pairs: today's gate {rate(pairs, 'naive_promotes')}, paired gate {rate(pairs, 'gate_promotes')}",
          flush=True)

    images = load_images(args.train_data, channels=params.prepare.channels, size=params.prepare.image_size)
    half = ganrun.train_run(ganrun.with_seed(params, seed, epochs=max(1, params.train.epochs // 2)), images, device,
                            args.evaluator, args.prepared, "half").g
    power = [b.gate(b.features(shipped, derive_seed(seed, "gate_power", t)),
                    b.features(half, derive_seed(seed, "gate_power_champion", t)), args.resamples, t)
             for t in range(args.power_trials)]
    print(f"power: today's gate {rate(power, 'naive_promotes')}, paired gate {rate(power, 'gate_promotes')}",
          flush=True)
    retrains = []
    for k in range(args.retrains):
        g = ganrun.train_run(ganrun.with_seed(params, seed + 1 + k), images, device, args.evaluator, args.prepared,
                             f"retrain{k}").g
        retrains.append(b.gate(b.features(g, seed), champ, args.resamples, k))
        print(f"  retrain seed {seed + 1 + k}: {retrains[-1]}", flush=True)
    doc = {"machine": machine(), "threads": torch.get_num_threads(), "alpha": ALPHA, "resamples": args.resamples,
           "n_scored": b.n, "seconds": round(time.perf_counter() - t0, 1),
           "false_promotions": {"todays_gate": rate(false, "naive_promotes"),
                                "paired_gate": rate(false, "gate_promotes"),
                                "champion_fid": false[0]["champion_fid"],
                                "candidate_fid_mean": float(np.mean([r["candidate_fid"] for r in false])),
                                "candidate_fid_sd": float(np.std([r["candidate_fid"] for r in false], ddof=1))},
           "false_promotions_fresh_pairs": {"todays_gate": rate(pairs, "naive_promotes"),
                                            "paired_gate": rate(pairs, "gate_promotes")},
           "power": {"todays_gate": rate(power, "naive_promotes"), "paired_gate": rate(power, "gate_promotes"),
                     "half_length_fid_mean": float(np.mean([r["champion_fid"] for r in power])),
                     "shipped_fid_mean": float(np.mean([r["candidate_fid"] for r in power]))},
           **({"retrains": {"todays_gate": rate(retrains, "naive_promotes"),
                            "paired_gate": rate(retrains, "gate_promotes"), "runs": retrains}} if retrains else {}),
           "trials": {"false": false, "fresh_pairs": pairs, "power": power}}
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "trials"}, indent=1))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
