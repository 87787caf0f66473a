"""One benchmark run in this process: what the train stage trains, scored as the evaluate stage
scores (shared by ablation.py and precision_seeds.py).

No DVC, dvclive or subprocess: a run costs its training and scoring only, so seed studies at
the shipped training length fit on a 2-core machine. Needs the outputs of the first stages
(`dvc repro evaluator augment`): the prepared data and the evaluator's extractor and
reference features.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dcgan.app.recipe import gan_config, plan_run
from dcgan.core.seeding import derive_seed
from dcgan.metrics.fid import feature_stats, frechet_distance
from dcgan.metrics.inception_score import inception_score
from dcgan.metrics.reference import load_reference, make_extractor
from dcgan.metrics.sets import Reference
from dcgan.metrics.training_fid import make_fid_fn
from dcgan.networks.gan import Generator
from dcgan.networks.model_dir import pick_generator
from dcgan.networks.sampling import discriminator_rejection_sampling, generate
from dcgan.training.loop import train


class Curves:
    """A MetricLogger that keeps every logged value: {name: {step: value}}."""

    def __init__(self) -> None:
        self.values: dict[str, dict[int, float]] = defaultdict(dict)

    def metric(self, name: str, value: float, step: int) -> None:
        self.values[name][step] = float(value)

    def image(self, name: str, grid: torch.Tensor, step: int) -> None:
        pass

    def trajectory(self) -> list[dict[str, float]]:
        """The report's table (:func:`dcgan.app.report_md.fid_trajectory`) as rows: step, FID, and D's
        mean outputs over the last logging window at or before that step."""
        import pandas as pd

        from dcgan.app.report_md import fid_trajectory

        curves = {name.split("/", 1)[1]: pd.DataFrame(sorted(v.items()), columns=["step", name.split("/", 1)[1]])
                  for name, v in self.values.items() if name.startswith("train/")}
        traj = fid_trajectory(curves)
        return [] if traj is None else [{k: (int(v) if k == "step" else float(v)) for k, v in r.items()}
                                         for r in traj.to_dict("records")]


@dataclass
class Trained:
    """A trained run: the generator chosen as the evaluate stage chooses (sample.generator: best by
    in-training FID, the last, or auto), the final discriminator, and how training went."""

    g: Generator
    d: torch.nn.Module
    steps: int
    train_s: float
    precision: str
    trajectory: list[dict[str, float]] = field(default_factory=list)
    g_last: Generator | None = None
    """The generator at the end of the run (``g`` is it unless the best one was chosen)."""
    ada: dict | None = None
    """ADA's p and r_t at the end (train.ada), else None."""


def train_run(params, images: np.ndarray, device: torch.device, evaluator: str, prepared: str,
              tag: str) -> Trained:
    """Train on ``images`` with ``params`` (its ``train`` section and ``base.seed``) as the train
    stage does, in-training FID every ``train.eval_every`` epochs keeping the best generator."""
    p, ev, seed = params.train, params.evaluator, params.base.seed
    # every auto decided as the train stage decides it, so the run records what it trained in
    run = plan_run(p, images, params.prepare.image_size, params.prepare.channels, data_stats(prepared), device,
                   seed=seed)
    fid_fn = make_fid_fn(evaluator, prepared, extractor=ev.extractor, inception_weights=ev.inception_weights,
                         batch_size=ev.feature_batch_size, samples=p.eval_samples, seed=seed,
                         device=device)[0] if run.eval_every else None
    curves = Curves()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r = train(run=run, seed=seed,
                  images=images, device=device, ckpt_dir=tmp, fingerprint=tag, logger=curves,
                  log=lambda m: None, fid_fn=fid_fn)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
    g = r.g
    if r.g_best is not None and pick_generator(params.sample.generator, run.ema_decay) == "best":
        g = Generator(run.arch).to(device)
        g.load_state_dict(r.g_best)
        g.eval()
    return Trained(g, r.ds[0], r.step, round(wall, 2), run.precision, curves.trajectory(), r.g.eval(), r.ada)


@dataclass
class Scorer:
    """The evaluate stage's extractor and the training set's reference features."""

    extractor: object
    ref: Reference

    @classmethod
    def load(cls, params, evaluator: str, prepared: str, device: torch.device) -> Scorer:
        ev = params.evaluator
        ref, _, _ = load_reference(evaluator, prepared, ev.extractor)
        extractor = make_extractor(ev.extractor, evaluator, ev.inception_weights, params.evaluate.batch_size, device)
        return cls(extractor, ref)

    @classmethod
    def judge(cls, params, judge: str, reals: np.ndarray, device: torch.device) -> Scorer:
        """A second feature space: the classifier in ``judge`` (trained with another seed on
        another split), with reference statistics of ``reals`` (the same training images the
        evaluator's reference holds), so that both FIDs measure the distance to the same set."""
        extractor = make_extractor("classifier", judge, "", params.evaluate.batch_size, device)
        feats, _ = extractor(reals, "features")
        return cls(extractor, Reference(None, *feature_stats(feats)))

    def score(self, images: np.ndarray, seed: int, bootstrap: int = 0, is_splits: int = 10
              ) -> dict[str, float]:
        """FID against the training set and IS of ``images``; with ``bootstrap`` > 0 also the
        FID estimator's standard deviation over that many resamples (with replacement) of the
        generated set: the noise that the sample count alone puts on one run's FID."""
        feats, logits = self.extractor(images, "features")
        out = {"fid": frechet_distance(*feature_stats(feats), self.ref.mu, self.ref.sigma),
               "is_mean": inception_score(logits, is_splits)[0]}
        if bootstrap:
            rng = np.random.default_rng(derive_seed(seed, "bootstrap"))
            fids = [frechet_distance(*feature_stats(feats[rng.integers(0, len(feats), len(feats))]),
                                     self.ref.mu, self.ref.sigma) for _ in range(bootstrap)]
            out["fid_boot_sd"] = float(np.std(fids, ddof=1))
        return out


def draw(t: Trained, n: int, seed: int, device: torch.device, sample, drs: bool) -> tuple[np.ndarray, dict]:
    """n images from the trained run as the sample stage draws them (``sample``: its params)."""
    if not drs:
        return generate(t.g, n, t.g.cfg.latent_dim, seed, device, sample.batch_size), {}
    res = discriminator_rejection_sampling(t.g, t.d, n, t.g.cfg.latent_dim, seed, device,
                                           sample.batch_size, sample.drs_burnin, sample.drs_percentile)
    return res.images, {"drs_acceptance_rate": res.acceptance_rate}


def data_stats(prepared: str | Path) -> tuple[list[float], list[float]] | None:
    """The prepared set's per-channel mean and std (train.normalize: meanstd), as the train stage reads them."""
    import json

    meta = Path(prepared) / "meta.json"
    if not meta.is_file():
        return None
    m = json.loads(meta.read_text())
    return (m["mean"], m["std"]) if "mean" in m else None


def shard(text: str) -> tuple[int, int]:
    """``--shard K/N`` (argparse type): every Nth job from the Kth, K counted from 0. A K that
    no job has (``2/2``) would run nothing and say nothing, so it is refused."""
    import argparse

    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N (e.g. 0/2 and 1/2 for two processes)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: N is the number of processes, at least 1")
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(
            f"{text!r}: K counts from 0 and is below N (for N = {n}: 0/{n} to {n - 1}/{n})")
    return k, n


def with_seed(params, seed: int, **train_changes):
    """params with base.seed = seed and the given train.* values."""
    return dataclasses.replace(params, base=dataclasses.replace(params.base, seed=seed),
                               train=dataclasses.replace(params.train, **train_changes))


def data_digest(images: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]


def cache_path(cache: Path, key: str) -> Path:
    return cache / f"{key}.pt"


def save_trained(path: Path, t: Trained) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    torch.save({"g": t.g.state_dict(), "d": t.d.state_dict(), "steps": t.steps, "train_s": t.train_s,
                "precision": t.precision, "trajectory": t.trajectory}, tmp)
    tmp.replace(path)


def load_trained(path: Path, params, device: torch.device, stats=None) -> Trained:
    from dcgan.networks.gan import Discriminator

    state = torch.load(path, map_location=device, weights_only=True)
    cfg = gan_config(params.train, params.prepare.image_size, params.prepare.channels, stats)
    g, d = Generator(cfg).to(device), Discriminator(cfg).to(device)
    g.load_state_dict(state["g"])
    d.load_state_dict(state["d"])
    return Trained(g.eval(), d.eval(), state["steps"], state["train_s"], state["precision"],
                   state["trajectory"])
