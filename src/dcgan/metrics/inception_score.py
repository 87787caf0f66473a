"""Inception Score from classifier logits: exp(E_x KL(p(y|x) || p(y))), mean/std over splits.

Follows the reference (Salimans et al. 2016 / torch-fidelity): softmax probabilities, the
marginal p(y) estimated per split, ``splits`` equal consecutive chunks.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    logits = np.asarray(logits, dtype=np.float64)
    n = len(logits)
    if n < splits:
        raise ValueError(f"{n} samples cannot be cut into {splits} IS splits")
    log_p = log_softmax(logits, axis=1)
    scores = []
    for chunk in np.array_split(log_p, splits):
        log_py = np.log(np.exp(chunk).mean(axis=0))
        kl = (np.exp(chunk) * (chunk - log_py)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))
