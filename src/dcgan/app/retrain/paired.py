"""The gate's paired FID test between the champion (the promoted model, re-scored by the
candidate's instrument: :mod:`.rescore`) and the candidate: both runs' generated features, scored
against the candidate's training-set reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dcgan.app.retrain.gate import PairedGain
from dcgan.app.retrain.shell import Log
from dcgan.metrics.fid import fid_of_features
from dcgan.metrics.uncertainty import paired_fid


def reference_features(path: Path) -> np.ndarray | None:
    """The training set's features in an evaluator's ``reference.npz``, or None."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return z["train_features"] if "train_features" in z.files else None


def fid_of(features: np.ndarray, reference: Path) -> float:
    """The FID of ``features`` against ``reference`` (an evaluator's reference.npz), as the
    evaluate stage computes it (the reference's stored mean and covariance)."""
    with np.load(reference, allow_pickle=False) as z:
        return fid_of_features(features, z["train_mu"], z["train_sigma"])


def features_match(features: np.ndarray, fid: object, reference: Path, n: object = None) -> bool:
    """Whether ``features`` are the ones a metrics.json's ``fid`` was computed from: their first
    ``n`` rows (``protocol.n_samples``: evaluate writes every generated image's features and
    scores the first n) give the same FID against the same reference, to float rounding. A
    features.npy left from another run (a partial checkout, a stage rerun that failed half-way)
    fails this."""
    if not isinstance(fid, int | float) or (n is not None and not (isinstance(n, int) and 2 <= n <= len(features))):
        return False
    rows = features if n is None else features[:n]
    return math.isclose(fid_of(rows, reference), float(fid), rel_tol=1e-6, abs_tol=1e-9)


def paired_fid_gain(candidate: np.ndarray, champion: np.ndarray, reference: Path, margin: float, resamples: int,
                    seed: int, log: Log, shared_latents: bool = False) -> PairedGain | None:
    """The paired bootstrap of the FID gain (champion - candidate) on all rows of both feature
    sets, against the training features in ``reference``; None (and why, logged) when the
    reference has none. ``shared_latents``: row i of both came from the same z (resampled
    jointly)."""
    ref = reference_features(reference)
    if ref is None:
        log(f"paired test skipped: {reference} has no training features")
        return None
    t = paired_fid(candidate, champion, ref, resamples, seed, margin, shared_latents=shared_latents)
    n = f"{len(candidate)} samples a side" + (", the same latents" if shared_latents else "")
    log(f"paired FID test ({n}): gain {t.gain:+.4g}, 95% CI {t.low:+.3g} to {t.high:+.3g}, p = {t.p_value:.3g} "
        f"({resamples} resamples)")
    return PairedGain(t.gain, t.low, t.high, t.p_value, t.resamples, len(candidate), shared_latents,
                      t.champion_fid, t.candidate_fid)
