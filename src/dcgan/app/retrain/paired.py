"""The gate's paired FID test between the workspace's model (the champion) and an experiment's
(the candidate): both runs' generated features, scored against one training-set reference."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from dcgan.app.retrain.constants import FEATURES_FILE, REFERENCE_FILE
from dcgan.app.retrain.gate import PairedGain
from dcgan.app.retrain.promotion import export_files
from dcgan.app.retrain.shell import Log
from dcgan.metrics.uncertainty import paired_fid


def load_features(path: Path) -> np.ndarray | None:
    return np.load(path, allow_pickle=False) if path.is_file() else None


def reference_features(root: Path) -> np.ndarray | None:
    path = root / REFERENCE_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return z["train_features"] if "train_features" in z.files else None


def paired_fid_gain(root: Path, rev: str, margin: float, resamples: int, seed: int, log: Log) -> PairedGain | None:
    """The paired bootstrap of the FID gain (champion - candidate), or None (and why, logged)
    when either run's features or the reference are missing (the gate then falls back on the
    runs' standard errors). Call it only when the protocols match: the reference is the
    workspace's, which is then the candidate's too."""
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
    t = paired_fid(candidate, champion, ref, resamples, seed, margin)
    log(f"paired FID test: gain {t.gain:+.4g}, 95% CI {t.low:+.3g} to {t.high:+.3g}, p = {t.p_value:.3g} "
        f"({resamples} resamples)")
    return PairedGain(t.gain, t.low, t.high, t.p_value, t.resamples)
