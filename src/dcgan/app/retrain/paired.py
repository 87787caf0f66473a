"""The gate's paired FID test between the workspace's model (the champion) and an experiment's
(the candidate): both runs' generated features, scored against one training-set reference."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from dcgan.app.retrain.constants import FEATURES_FILE, REFERENCE_FILE
from dcgan.app.retrain.gate import PairedGain
from dcgan.app.retrain.promotion import export_files
from dcgan.app.retrain.shell import Log
from dcgan.metrics.fid import feature_stats, frechet_distance
from dcgan.metrics.uncertainty import paired_fid


def load_features(path: Path) -> np.ndarray | None:
    return np.load(path, allow_pickle=False) if path.is_file() else None


def reference_features(root: Path) -> np.ndarray | None:
    path = root / REFERENCE_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return z["train_features"] if "train_features" in z.files else None


def fid_of(features: np.ndarray, root: Path) -> float:
    """The FID of ``features`` against the workspace's reference, as the evaluate stage
    computes it (the reference's stored mean and covariance)."""
    with np.load(root / REFERENCE_FILE, allow_pickle=False) as z:
        return frechet_distance(*feature_stats(features), z["train_mu"], z["train_sigma"])


def features_match(features: np.ndarray, fid: object, root: Path) -> bool:
    """Whether ``features`` are the ones a metrics.json's ``fid`` was computed from: the same
    FID against the same reference, to float rounding. A features.npy left from another run
    (a partial checkout, a stage rerun that failed half-way) fails this."""
    return isinstance(fid, int | float) and math.isclose(fid_of(features, root), float(fid), rel_tol=1e-6, abs_tol=1e-9)


def paired_fid_gain(root: Path, rev: str, margin: float, resamples: int, seed: int, log: Log,
                    fids: tuple[object, object] | None = None) -> PairedGain | None:
    """The paired bootstrap of the FID gain (champion - candidate), or None (and why, logged)
    when either run's features or the reference are missing, or when ``fids`` (the champion's
    and the candidate's metrics.json FID) are given and either run's features do not give its
    FID (the gate then falls back on the runs' standard errors). Call it only when the protocols
    match: the reference is the workspace's, which is then the candidate's too."""
    champion = load_features(root / FEATURES_FILE)
    ref = reference_features(root)
    if champion is None or ref is None:
        log(f"paired test skipped: the workspace has no {FEATURES_FILE if champion is None else REFERENCE_FILE} "
            "(run dvc repro once)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            export_files(root, rev, [FEATURES_FILE], Path(tmp))
        except Exception as exc:  # an experiment from before the features were written
            log(f"paired test skipped: the experiment has no {FEATURES_FILE} ({exc})")
            return None
        candidate = np.load(Path(tmp) / Path(FEATURES_FILE).name, allow_pickle=False)
    if fids is not None:
        for who, feats, fid in (("the workspace's", champion, fids[0]), ("the experiment's", candidate, fids[1])):
            if not features_match(feats, fid, root):
                log(f"paired test skipped: {who} {FEATURES_FILE} gives FID {fid_of(feats, root):.6g}, not its "
                    f"metrics.json's {fid!r}: they are not from the same evaluate run (rerun dvc repro)")
                return None
    t = paired_fid(candidate, champion, ref, resamples, seed, margin)
    log(f"paired FID test: gain {t.gain:+.4g}, 95% CI {t.low:+.3g} to {t.high:+.3g}, p = {t.p_value:.3g} "
        f"({resamples} resamples)")
    return PairedGain(t.gain, t.low, t.high, t.p_value, t.resamples)
