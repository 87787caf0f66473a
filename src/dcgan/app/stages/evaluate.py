"""evaluate: FID, IS, KID, precision/recall, the copy rate and reconstruction metrics, each beside
its real-data floor, FID/IS/KID with their bootstrap noise, plus the protocol ->
reports/metrics.json; reports/reconstructions.png, reports/copies.png (the generated images
closest to a training image, beside it) and the generated images' features (for the promotion
gate's paired test)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.app import paths
from dcgan.app.params.base import BaseParams
from dcgan.app.params.evaluate import EvaluateParams
from dcgan.app.params.evaluator import EvaluatorParams
from dcgan.app.params.typed import fill_from, keyed
from dcgan.app.stages._common import log, params_from, parser, run
from dcgan.core import files
from dcgan.core.code import modules_digest
from dcgan.core.devices import pick_device
from dcgan.core.images import save_grid
from dcgan.core.seeding import derive_seed
from dcgan.data import arrays
from dcgan.metrics.copies import closest_pairs
from dcgan.metrics.reconstruction import (
    encode_decode,
    invert_by_optimisation,
    reconstruction_metrics,
)
from dcgan.metrics.reference import check_extractor, load_reference, make_extractor, subset_rows
from dcgan.metrics.registry import UNOFFICIAL_WEIGHTS
from dcgan.metrics.sets import FeatureSet
from dcgan.metrics.suite import ScoreOptions, check_sample_size, copy_test, options_protocol, score
from dcgan.metrics.uncertainty import bootstrap
from dcgan.networks.model_dir import load_encoder, load_generator, read_card


@dataclass(frozen=True)
class Reads:
    """The params sections this stage reads."""

    base: BaseParams
    evaluator: EvaluatorParams
    evaluate: EvaluateParams


def interleave_rows(real: np.ndarray, recon: np.ndarray, per_row: int = 8) -> np.ndarray:
    """Grid order: a row of reals, the row of their reconstructions below it, and so on."""
    rows = []
    for start in range(0, len(real), per_row):
        rows += [real[start:start + per_row], recon[start:start + per_row]]
    return np.concatenate(rows)


def _extractor_protocol(kind: str, extractor, evaluator_dir: str, ref) -> dict:
    """What the protocol says of the extractor and its reference: how images reach its input
    size (evaluator.resize; native: the classifier's own size), which training images FID
    compares with (the reference's mean, digested), and the classifier's held-out accuracy or
    whether the Inception weights are the official ones."""
    out = {"resize": getattr(extractor, "resize", "native"),
           "reference_id": hashlib.sha256(np.ascontiguousarray(ref.mu, np.float64).tobytes()).hexdigest()[:16]}
    if kind == "classifier":
        info = files.read_json(Path(evaluator_dir) / "classifier.json")
        return {**out, "extractor_holdout_accuracy": round(float(info["holdout_accuracy"]), 4)}
    official = bool(getattr(extractor, "official", False))
    if not official:
        log(f"evaluate: warning: {UNOFFICIAL_WEIGHTS}")
    return {**out, "weights_official": int(official)}


def _reconstruct(p, which: str, args, holdout, samples, device, seed: int, metrics: dict) -> dict[str, object]:
    """Reconstruction metrics and their floor into ``metrics``, and the reals-vs-reconstructions
    grid; returns the protocol's ``recon_method`` (encoder when G's own encoder did the
    inversion, else latent optimisation, or skipped) and ``recon_images``."""
    s = holdout.shape[-1]
    if not p.recon_images:  # the grid is a declared output: show the reals alone, and say why
        save_grid(holdout[:32], args.recon_grid, nrow=8, upscale=max(1, 64 // s))
        log("evaluate: evaluate.recon_images is 0, reconstruction metrics skipped")
        return {"recon_method": "latent_optimisation", "recon_images": 0}
    g = load_generator(args.models, device, which)
    e = load_encoder(args.models, device)
    k = min(p.recon_images, len(holdout), len(samples))
    if e is not None:  # the encoder trained with G: one pass, no optimisation
        inv = lambda x: encode_decode(e, g, x, device)  # noqa: E731
    else:
        inv = lambda x: invert_by_optimisation(g, x, g.cfg.latent_dim, p.recon_steps,  # noqa: E731
                                               p.recon_restarts, p.recon_lr, seed, device)
    recon = inv(holdout[:k])
    metrics.update(reconstruction_metrics(holdout[:k], recon))
    # floor: G's own samples, which G can represent exactly: what the inversion itself reaches
    own = samples[:k]
    metrics.update({f"{key}_floor": v for key, v in reconstruction_metrics(own, inv(own)).items()})
    save_grid(interleave_rows(holdout[:k][:32], recon[:32]), args.recon_grid, nrow=8,
              upscale=max(1, 64 // s))
    return {"recon_method": "encoder" if e is not None else "latent_optimisation", "recon_images": k}


def copies_grid(path: str, gen: np.ndarray, samples, data: Path, ref_meta: dict, seed: int, ref) -> None:
    """The 8 generated images closest to a training image (top row) above those training images."""
    pairs = closest_pairs(copy_test(ref)(gen), 8)
    train = arrays.open_images(data / "train.npy")
    rows = subset_rows(len(train), int(ref_meta.get("max_images", len(train))), seed, "train")
    s = train.shape[-1]
    fake = samples.rows(np.array([g for g, _, _ in pairs]))
    real = np.stack([train.rows(np.array([rows[t]]))[0] for _, t, _ in pairs])
    train.close()
    save_grid(np.concatenate([fake, real]), path, nrow=len(pairs), upscale=max(1, 64 // s))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = parser(__doc__)
    ap.add_argument("--samples", default=paths.SAMPLES, help="sample's output")
    ap.add_argument("--data", default=paths.PREPARED, help="prepare's output folder (train + holdout)")
    ap.add_argument("--evaluator", default=paths.EVALUATOR, help="evaluator's output folder")
    ap.add_argument("--models", default=paths.MODELS, help="train's output folder (for reconstruction)")
    ap.add_argument("--out", default=paths.METRICS, help="metrics file")
    ap.add_argument("--recon-grid", default=paths.RECON_GRID, help="reals vs reconstructions")
    ap.add_argument("--copies-grid", default=paths.COPIES_GRID,
                    help="the generated images closest to a training image, above those images")
    ap.add_argument("--features", default=paths.FEATURES,
                    help="the scored images' features (the promotion gate's paired test)")
    return ap.parse_args(argv)


def _protocol(args: argparse.Namespace, params: Reads, extractor, ref, ref_meta: dict, n: int, stable: bool,
              recon: dict[str, object], sample_info: dict) -> dict[str, object]:
    """How this run was measured: what the promotion gate and ``dcgan review`` compare runs on
    (each metric's options from its own declaration, :func:`options_protocol`)."""
    p, ev = params.evaluate, params.evaluator
    card = read_card(args.models)  # how G was trained (precision, compile)
    protocol = {
        "extractor": ev.extractor, "extractor_id": extractor.id, "feature_dim": int(ref.features.shape[1]),
        "n_samples": int(n), "n_reference": int(len(ref.features)), "n_samples_enough_for_fid": int(stable),
        "reference_split": "train", "floor_split": "holdout",
        "generator": sample_info.get("generator", "best"),
        # the number format and step mode G was trained in (as resolved on the training machine)
        "train_precision": card.precision or "fp32", "train_compile": card.compile or "none",
        **options_protocol(fill_from(ScoreOptions, p), n),
        "reference_max_images": int(ref_meta.get("max_images", 0)),
        **recon,
        "bootstrap": p.bootstrap,
        # the metric code that scored this run (docstrings and comments aside): other code is
        # another measurement, which the promotion gate does not compare
        "metric_code": modules_digest(m for name, m in sorted(sys.modules.items())
                                      if name.startswith("dcgan.metrics.")),
        **_extractor_protocol(ev.extractor, extractor, args.evaluator, ref),
    }
    if sample_info:
        protocol["drs"] = int(bool(sample_info.get("drs")))
    return protocol


KEYS = {"device": "base.device", "extractor": "evaluator.extractor", "inception_weights": "evaluator.inception_weights",
        "inception_download": "evaluator.inception_download", "samples": "sample.num_samples"}
"""The params key of each setting a library error may name here (the others are evaluate's)."""


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    with keyed("evaluate", **KEYS):
        _evaluate(args, params_from(args, Reads))


def _evaluate(args: argparse.Namespace, params: Reads) -> None:
    """Score the samples (see the module's doc)."""
    p, ev, seed = params.evaluate, params.evaluator, params.base.seed
    data = Path(args.data)
    # both read a batch at a time: memory does not grow with the number of images
    holdout = arrays.open_images(data / "holdout.npy")
    samples = arrays.open_images(args.samples, channels=holdout.shape[1], size=holdout.shape[-1])
    device = pick_device(params.base.device)
    ref, hold_fs, ref_meta = load_reference(args.evaluator, data, ev.extractor)
    # the floor's held-out images: those the evaluator extracted (at most reference_max_images)
    n = p.num_samples or len(hold_fs.features)
    stable = check_sample_size(n, ref.features.shape[1], len(samples), len(hold_fs.features), log)
    extractor = make_extractor(ev.extractor, args.evaluator, ev.inception_weights, p.batch_size, device,
                               resize=ev.resize)
    check_extractor(ref_meta, extractor, args.evaluator)
    gen_fs = FeatureSet(*extractor(samples.rows(np.arange(len(samples))), "features: samples"))
    metrics = score(gen_fs, hold_fs, ref, p.metrics, fill_from(ScoreOptions, p), seed, n, warn=lambda m: None)
    gen = gen_fs.features[:n]
    metrics.update(bootstrap(metrics, gen, None if gen_fs.logits is None else gen_fs.logits[:n], ref.features,
                             p.metrics, p.bootstrap, derive_seed(seed, "bootstrap"), p.is_splits,
                             kid_subsets=p.kid_subsets, kid_subset_size=p.kid_subset_size))
    # every generated image's features, not only the n scored beside the floors: the gate's paired
    # test has the power of all of them (the first n give metrics.json's FID)
    files.write_npy(args.features, gen_fs.features.astype(np.float32))
    copies_grid(args.copies_grid, gen, samples, data, ref_meta, seed, ref)
    # what the sample stage wrote beside the samples: which generator, whether DRS
    info_path = Path(args.samples).with_suffix(".json")
    sample_info = files.read_json(info_path) if info_path.is_file() else {}
    recon = _reconstruct(p, sample_info.get("generator", "best"), args, holdout, samples, device, seed, metrics)
    if sample_info.get("drs"):
        metrics["drs_acceptance_rate"] = sample_info["drs_acceptance_rate"]
    protocol = _protocol(args, params, extractor, ref, ref_meta, n, stable, recon, sample_info)
    metrics.update({f"protocol.{k}": v for k, v in protocol.items()})
    files.write_json(args.out, metrics)
    shown = ", ".join(f"{k} {metrics[k]:.4g} (floor {metrics[k + '_floor']:.4g})"
                      for k in ("fid", "is_mean", "kid_mean", "precision", "recall", "recon_psnr")
                      if k in metrics)
    log(f"evaluate: {shown} -> {args.out}")


if __name__ == "__main__":
    sys.exit(run(main))
