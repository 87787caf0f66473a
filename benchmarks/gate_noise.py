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
- **Retrains** (issue 38; what a schedule really gates: two trained models). First train and
  cache the models, as the train stage trains them (about a minute each here; run two at once
  with OMP_NUM_THREADS=1)::

      python benchmarks/gate_noise.py train --arm shipped --seeds 0 1 2 ... 20
      python benchmarks/gate_noise.py train --arm no_r1 --seeds 1 ... 20      # and plain, r1_every4
      python benchmarks/gate_noise.py retrains --retrains 20

  *False promotions*: the shipped recipe retrained with seeds 1..20, each gated against the
  fixed champion (seed 0). *Power*: each candidate recipe gated against the weaker recipe
  trained with the same seed (R1 on against off, in the shipped recipe and on plain DCGAN, the
  ablation's measured pair). Both sides of every pair are sampled from the candidate's
  latents, as the flow re-scores the champion, and gated three ways: the old gate (as many
  samples as the holdout, resampled independently), all samples independently, and the flow's
  (all samples, jointly). Writes the ``retrains`` section.
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
from ablation import OFF, R1, machine  # noqa: E402

from dcgan.app.params.whole import load_params  # noqa: E402
from dcgan.app.retrain.gate import ALPHA, PairedGain, decide  # noqa: E402
from dcgan.core.devices import pick_device  # noqa: E402
from dcgan.core.seeding import derive_seed  # noqa: E402
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


ARMS = {"shipped": {}, "no_r1": {"r1_gamma": 0.0}, "plain": OFF, "r1_every4": {**OFF, **R1}}
"""The retrain studies' recipes: the shipped one (params.yaml, auto resolved as the train stage
resolves it) and the same with R1 off; plain DCGAN and R1 every 4 steps on top of it, the pair
whose gain on digits reports/ablation.md measured (0.52 FID, p = 0.015)."""
POWER_PAIRS = (("no_r1", "shipped"), ("plain", "r1_every4"))
"""(champion, candidate) recipes of the power study: the candidate's recipe is the better one."""


def model_key(arm: str, seed: int, params, images: np.ndarray) -> str:
    return f"gate-{arm}-{ganrun.data_digest(images)}-e{params.train.epochs}-s{seed}"


def trained(arm: str, seed: int, params, images: np.ndarray, device: torch.device, evaluator: str,
            prepared: str, cache: Path):
    """The ``arm`` recipe trained with ``seed`` as the train stage trains it (cached: a rerun
    rescores, it does not retrain)."""
    run_params = ganrun.with_seed(params, seed, **ARMS[arm])
    path = ganrun.cache_path(cache, model_key(arm, seed, params, images))
    if path.is_file():
        return ganrun.load_trained(path, run_params, device, ganrun.data_stats(prepared))
    t0 = time.perf_counter()
    t = ganrun.train_run(run_params, images, device, evaluator, prepared, f"{arm}-s{seed}")
    ganrun.save_trained(path, t)
    print(f"  trained {arm} seed {seed} in {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
    return t


def train_only(args) -> int:
    device = pick_device("cpu")
    params = load_params(args.params)
    images = load_images(args.train_data, channels=params.prepare.channels, size=params.prepare.image_size)
    for seed in args.seeds:
        trained(args.arm, seed, params, images, device, args.evaluator, args.prepared, Path(args.cache))
    return 0


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """The 95% (Wilson) interval of a rate of k in n."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def gate_pair(b: Bench, cand: np.ndarray, champ: np.ndarray, n: int, shared: bool, resamples: int, seed: int) -> dict:
    """The flow's FID gate on one (candidate, champion) pair, both drawn from the same latents,
    on the first n rows (shared: resampled jointly, as the flow does; else independently)."""
    t = paired_fid(cand[:n], champ[:n], b.ref.features, resamples, seed, shared_latents=shared)
    old, new = b.fid(champ[:n]), b.fid(cand[:n])
    c = decide({"fid": {"old": old, "new": new}}, "fid", 0.0,
               PairedGain(t.gain, t.low, t.high, t.p_value, t.resamples, n, shared))
    return {"champion_fid": old, "candidate_fid": new, "gain": t.gain, "se": t.se, "p_value": t.p_value,
            "promotes": c.promote}


def key(c: tuple[int, bool]) -> str:
    return f"{c[0]} {'joint' if c[1] else 'independent'}"


def retrain_study(args) -> int:
    """False promotions and power on retrains (issue 38): every model trained as the train stage
    trains it (``train`` subcommand, cached), both sides of a pair sampled from the candidate's
    latents, as the flow re-scores the champion. Each gated pair is kept in ``--results`` (a
    rerun adds what is missing)."""
    from scipy.stats import norm

    device = pick_device("cpu")
    params = load_params(args.params)
    b = Bench(params, args.evaluator, args.prepared, device)
    images = load_images(args.train_data, channels=params.prepare.channels, size=params.prepare.image_size)
    cache = Path(args.cache)
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    n_all = params.sample.num_samples
    t0 = time.perf_counter()

    def model(arm: str, seed: int):
        return trained(arm, seed, params, images, device, args.evaluator, args.prepared, cache).g

    def feats(arm: str, seed: int, latent_seed: int) -> np.ndarray:
        g = model(arm, seed)
        return b.extractor(generate(g, n_all, g.cfg.latent_dim, latent_seed, device, params.sample.batch_size),
                           "features")[0]

    # (n, jointly): the old gate (as many as the holdout, independent draws), then more samples
    # and the same latents resampled jointly (the flow's gate: every sample, jointly)
    configs = sorted({(b.n, False), (n_all, False), (n_all, True), *((n, True) for n in args.n)})
    seeds = list(range(args.champion_seed + 1, args.champion_seed + 1 + args.retrains))

    def gates(study: str) -> list[tuple[int, bool]]:
        return [(n_all, True)] if study.startswith("false, champion seed") else configs
    studies = {} if args.no_fixed else {"false": [("shipped", args.champion_seed, "shipped", k) for k in seeds]}
    # the fixed champion may be a lucky or an unlucky seed: other champions, each against every
    # other retrain, on the flow's gate alone
    everyone = [args.champion_seed, *seeds]
    for c in args.other_champions:
        studies[f"false, champion seed {c}"] = [("shipped", c, "shipped", k) for k in everyone if k != c]
    for weak, strong in POWER_PAIRS:
        if weak in args.power and strong in args.power:
            both = [k for k in seeds if all(ganrun.cache_path(cache, model_key(arm, k, params, images)).is_file()
                                            for arm in (weak, strong))]  # trained: seeds that have both
            studies[f"power {weak} -> {strong}"] = [(weak, k, strong, k) for k in both[:args.power_retrains]]
    for name, pairs in studies.items():
        for champ_arm, champ_seed, cand_arm, k in pairs:
            todo = [c for c in gates(name)
                    if f"{name}|{champ_arm}:{champ_seed}|{cand_arm}:{k}|{key(c)}|{args.resamples}" not in results]
            if not todo:
                continue
            cand, champ = feats(cand_arm, k, k), feats(champ_arm, champ_seed, k)  # the candidate's latents
            for c in todo:
                results[f"{name}|{champ_arm}:{champ_seed}|{cand_arm}:{k}|{key(c)}|{args.resamples}"] = {
                    **gate_pair(b, cand, champ, c[0], c[1], args.resamples, k),
                    "champion_fid_all": b.fid(champ), "candidate_fid_all": b.fid(cand)}
            results_path.write_text(json.dumps(results, indent=0) + "\n")
            r = results[f"{name}|{champ_arm}:{champ_seed}|{cand_arm}:{k}|{key((n_all, True))}|{args.resamples}"]
            print(f"  {name}, seed {k}: {cand_arm} {r['candidate_fid']:.3f} vs {champ_arm} {r['champion_fid']:.3f}: "
                  f"gain {r['gain']:+.3f}, p {r['p_value']:.3f}", flush=True)
    # each model's "true" FID: args.truth fresh samples (other latents than any gate saw): a
    # promotion is false when the candidate is not better than the champion by this measure
    def truth(arm: str, seed: int) -> float:
        k = f"truth|{arm}:{seed}|{args.truth}"
        if k not in results:
            g = model(arm, seed)
            images = generate(g, args.truth, g.cfg.latent_dim, derive_seed(seed, "gate_truth"), device,
                              params.sample.batch_size)
            results[k] = b.fid(b.extractor(images, "features")[0])
            results_path.write_text(json.dumps(results, indent=0) + "\n")
        return results[k]

    z = norm.ppf(1 - ALPHA) + norm.ppf(0.8)
    doc = {"machine": machine(), "threads": torch.get_num_threads(), "alpha": ALPHA, "resamples": args.resamples,
           "champion": f"shipped recipe, seed {args.champion_seed}", "retrain_seeds": seeds,
           "n_holdout": b.n, "n_samples": n_all, "studies": {}}
    for name, pairs in studies.items():
        rows = {}
        for c in gates(name):
            got = [results[f"{name}|{a}:{sa}|{bb}:{k}|{key(c)}|{args.resamples}"] for a, sa, bb, k in pairs]
            better = [truth(bb, k) < truth(a, sa) for a, sa, bb, k in pairs] if args.truth else [False] * len(pairs)
            k_prom = sum(r["promotes"] for r in got)
            k_false = sum(r["promotes"] and not t for r, t in zip(got, better, strict=True))
            k_right = sum(r["promotes"] and t for r, t in zip(got, better, strict=True))
            se = float(np.median([r["se"] for r in got]))
            rows[key(c)] = {"n": c[0], "shared_latents": c[1], "promoted": k_prom, "pairs": len(got),
                            "rate": k_prom / len(got), "ci95": wilson(k_prom, len(got)),
                            "truly_better": sum(better), "promoted_not_better": k_false,
                            "false_rate": k_false / max(1, len(got) - sum(better)),
                            "false_ci95": wilson(k_false, len(got) - sum(better)),
                            "promoted_truly_better": k_right, "power_on_better": k_right / max(1, sum(better)),
                            "gain_mean": float(np.mean([r["gain"] for r in got])),
                            "gain_sd": float(np.std([r["gain"] for r in got], ddof=1)),
                            "gain_se_median": se, "detectable_gain_80": z * se}
        every = [results[f"{name}|{a}:{sa}|{bb}:{k}|{key((n_all, True))}|{args.resamples}"] for a, sa, bb, k in pairs]
        doc["studies"][name] = {"by_gate": rows,
                                "candidate_fid_all": {"mean": float(np.mean([r["candidate_fid_all"] for r in every])),
                                                      "seed_sd": float(np.std([r["candidate_fid_all"] for r in every],
                                                                              ddof=1))},
                                "champion_fid_all": {"mean": float(np.mean([r["champion_fid_all"] for r in every])),
                                                     "sd": float(np.std([r["champion_fid_all"] for r in every], ddof=1))}}
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    whole = json.loads(out.read_text()) if out.is_file() else {}
    whole["retrains"] = doc
    out.write_text(json.dumps(whole, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    return 0


def rate(rows: list[dict], key: str) -> dict:
    k = sum(r[key] for r in rows)
    return {"promoted": k, "trials": len(rows), "rate": k / len(rows)}


def data_args(ap: argparse.ArgumentParser) -> None:
    """The pipeline outputs every study reads (`dvc repro` makes them)."""
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--train-data", default="data/augmented/train.npy")
    ap.add_argument("--evaluator", default="models/evaluator")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "train":  # gate_noise.py train --arm no_r1 --seeds 0 1 2
        ap = argparse.ArgumentParser(description="train (and cache) the retrain studies' models")
        ap.add_argument("cmd")
        ap.add_argument("--arm", choices=sorted(ARMS), default="shipped")
        ap.add_argument("--seeds", type=int, nargs="+", required=True)
        data_args(ap)
        ap.add_argument("--cache", default=".ablation-cache")
        return train_only(ap.parse_args())
    if len(sys.argv) > 1 and sys.argv[1] == "retrains":  # gate_noise.py retrains --retrains 20
        ap = argparse.ArgumentParser(description="false promotions and power on retrains")
        ap.add_argument("cmd")
        ap.add_argument("--retrains", type=int, default=20, help="retrains gated (seeds after the champion's)")
        ap.add_argument("--champion-seed", type=int, default=0)
        ap.add_argument("--other-champions", type=int, nargs="*", default=[],
                        help="also gate every retrain against these seeds' models as champions (the flow's gate)")
        ap.add_argument("--truth", type=int, default=10000,
                        help="fresh samples per model behind its 'true' FID (0 = skip)")
        ap.add_argument("--no-fixed", action="store_true", help="skip the fixed champion's study (another process has it)")
        ap.add_argument("--n", type=int, nargs="*", default=[], help="also gate on the first N samples, jointly")
        ap.add_argument("--resamples", type=int, default=200, help="bootstrap rounds per gated pair (the flow: 500)")
        data_args(ap)
        ap.add_argument("--cache", default=".ablation-cache")
        ap.add_argument("--power-retrains", type=int, default=20, help="pairs per power study (the first seeds)")
        ap.add_argument("--power", nargs="*", default=sorted(ARMS), help="recipes the power study may use")
        ap.add_argument("--results", default=".ablation-cache/gate-study.json", help="each gated pair (reruns add)")
        ap.add_argument("--out", default="reports/gate_noise.json")
        return retrain_study(ap.parse_args())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=40, help="false-promotion trials (fresh draws of one model)")
    ap.add_argument("--power-trials", type=int, default=20, help="trials of a clearly better model")
    ap.add_argument("--resamples", type=int, default=500, help="bootstrap rounds per paired test (the flow's)")
    ap.add_argument("--models", default="models/gan")
    data_args(ap)
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
           "trials": {"false": false, "fresh_pairs": pairs, "power": power}}
    out = Path(args.out)  # the retrain studies' sections stay
    kept = {k: v for k, v in json.loads(out.read_text()).items() if k.startswith("retrains")} if out.is_file() else {}
    out.write_text(json.dumps({**doc, **kept}, indent=1) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "trials"}, indent=1))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
