"""How sure a score is: a seeded bootstrap over the generated and the reference features.

Each resample draws the generated set's rows and the reference's rows with replacement (the
same counts for every metric of one resample) and recomputes the metric. The spread of the
resampled values is the estimator's noise: the standard error (their standard deviation) and a
95% percentile interval. It is the noise of *this* set of samples and *this* reference, not the
seed-to-seed noise of training (reports/ablation.md measures that one separately).

Resampling the reference uses multinomial counts as weights over its rows, a chunk at a time,
so memory stays one chunk and a (D, D) matrix however large the reference is.

:func:`paired_fid` is the promotion gate's test: two generated sets scored against *one*
resample of the reference in each round, so the reference's noise, which both share, cancels
in their difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dcgan.core.progress import progress
from dcgan.metrics import registry
from dcgan.metrics.fid import feature_stats, fid_of_features, weighted_frechet
from dcgan.metrics.inception_score import inception_score
from dcgan.metrics.kid import polynomial_mmd2

CHUNK = 4096


@dataclass(frozen=True)
class Spread:
    """A metric's bootstrap: standard error and 95% interval around the point estimate.

    The interval is the resamples' 2.5 and 97.5 percentiles moved so that their mean sits on
    the point estimate: a resample repeats rows, which biases FID and KID upwards (fewer
    distinct images), and an interval of the raw percentiles could miss the estimate itself.
    """

    se: float
    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray, estimate: float) -> Spread:
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if len(v) < 2:
            return cls(float("nan"), float("nan"), float("nan"))
        lo, hi = np.percentile(v, [2.5, 97.5]) - v.mean() + estimate
        return cls(float(np.std(v, ddof=1)), float(lo), float(hi))

    def keys(self, key: str) -> dict[str, float]:
        """``<key>_se``, ``<key>_ci_low``, ``<key>_ci_high``."""
        return {f"{key}_se": self.se, f"{key}_ci_low": self.low, f"{key}_ci_high": self.high}


def weighted_stats(features: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of ``features`` with row ``i`` taken ``counts[i]`` times
    (a bootstrap resample without building it), float64, ``CHUNK`` rows at a time. With all
    counts 1 it is :func:`feature_stats` up to float64 rounding."""
    n = float(counts.sum())
    d = features.shape[1]
    s1, s2 = np.zeros(d), np.zeros((d, d))
    # centre on the first chunk's mean: the sums stay small and the subtraction exact enough
    centre = np.asarray(features[:CHUNK], np.float64).mean(axis=0)
    for a in range(0, len(features), CHUNK):
        w = counts[a:a + CHUNK].astype(np.float64)
        x = np.asarray(features[a:a + CHUNK], np.float64) - centre
        s1 += w @ x
        s2 += (x * w[:, None]).T @ x
    mean = s1 / n
    cov = (s2 - n * np.outer(mean, mean)) / (n - 1)
    return mean + centre, cov


def _counts(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.multinomial(n, np.full(n, 1.0 / n))


@dataclass(frozen=True)
class Scored:
    """What a bootstrap resamples: the scored generated features (and logits, for IS), the
    reference's features, and the metrics' own settings."""

    gen_features: np.ndarray
    gen_logits: np.ndarray | None
    ref_features: np.ndarray
    is_splits: int
    kid_subsets: int
    kid_subset_size: int


@dataclass(frozen=True)
class Draw:
    """One resample: how often each generated and each reference row is drawn, and the
    resample's random stream (for metrics that draw subsets of their own, as KID)."""

    gen_counts: np.ndarray
    ref_counts: np.ndarray
    rng: np.random.Generator


def _fid_of(s: Scored, d: Draw) -> float:
    return weighted_frechet(s.gen_features, d.gen_counts, *weighted_stats(s.ref_features, d.ref_counts))


def _is_of(s: Scored, d: Draw) -> float | None:
    if s.gen_logits is None:
        return None
    return inception_score(np.repeat(s.gen_logits, d.gen_counts, axis=0), s.is_splits)[0]


def _kid_of(s: Scored, d: Draw) -> float:
    n, m = len(s.gen_features), len(s.ref_features)
    g, r = np.repeat(s.gen_features, d.gen_counts, axis=0), np.repeat(np.arange(m), d.ref_counts)
    k = min(s.kid_subset_size, n, m)
    return float(np.mean([polynomial_mmd2(s.ref_features[np.sort(d.rng.choice(r, k, replace=False))],
                                          g[d.rng.choice(n, k, replace=False)]) for _ in range(s.kid_subsets)]))


RESAMPLED: dict[str, Callable[[Scored, Draw], float | None]] = {"fid": _fid_of, "is_mean": _is_of,
                                                                "kid_mean": _kid_of}
"""Each key of :data:`dcgan.metrics.registry.UNCERTAIN` recomputed on one resample (None: not
computable from what was scored, e.g. IS without logits)."""
if set(RESAMPLED) != set(registry.UNCERTAIN):  # a bug: the catalogue and the code disagree
    raise ImportError(f"uncertain keys without a resampled estimator or catalogue entry: "
                      f"{sorted(set(RESAMPLED) ^ set(registry.UNCERTAIN))}")


def bootstrap(estimates: dict[str, float], gen_features: np.ndarray, gen_logits: np.ndarray | None,
              ref_features: np.ndarray, names: tuple[str, ...], resamples: int, seed: int, is_splits: int = 10,
              kid_subsets: int = 10, kid_subset_size: int = 1000) -> dict[str, float]:
    """``<key>_se``/``_ci_low``/``_ci_high`` for each key of :data:`~dcgan.metrics.registry.UNCERTAIN`
    (fid, is_mean, kid_mean) whose metric is among ``names`` (evaluate.metrics), from
    ``resamples`` seeded resamples; {} when 0. ``estimates``: the point estimates
    (``{"fid": ..., ...}``) the intervals are centred on.

    KID's resamples use ``kid_subsets`` subsets each: pass the point estimate's own count
    (evaluate.kid_subsets), or the spread is that of a noisier estimator than the one reported.
    """
    if resamples <= 0:
        return {}
    rng = np.random.default_rng(seed)
    scored = Scored(gen_features, gen_logits, ref_features, is_splits, kid_subsets, kid_subset_size)
    keys = [k for k in registry.UNCERTAIN if registry.metric_of(k) in names]  # in the catalogue's order
    vals: dict[str, list[float]] = {k: [] for k in keys}
    for _ in progress(range(resamples), desc="bootstrap", unit="resample", leave=False, disable=resamples < 50):
        draw = Draw(_counts(rng, len(gen_features)), _counts(rng, len(ref_features)), rng)
        for key in keys:
            v = RESAMPLED[key](scored, draw)
            if v is not None:
                vals[key].append(v)
    out: dict[str, float] = {}
    for key, v in vals.items():
        if v:
            out.update(Spread.of(np.array(v), estimates[key]).keys(key))
    return out


@dataclass(frozen=True)
class PairedTest:
    """The champion's FID minus the candidate's (the gain; > 0: the candidate is better), its
    bootstrap interval and the one-sided p-value of "no gain above ``margin``"."""

    gain: float
    se: float
    low: float
    high: float
    p_value: float
    resamples: int
    champion_fid: float = math.nan
    """The champion's FID on all its rows, against the whole reference (gain = this - candidate's)."""
    candidate_fid: float = math.nan


def paired_fid(candidate: np.ndarray, champion: np.ndarray, ref_features: np.ndarray, resamples: int,
               seed: int, margin: float = 0.0, shared_latents: bool = False) -> PairedTest:
    """Is the candidate's FID lower than the champion's by more than ``margin``?

    Each round resamples the reference once (shared by both: its noise cancels in the
    difference) and each generated set on its own (they are independent samples), or, with
    ``shared_latents`` (row i of both sets came from the same latent z), the same rows of both:
    the latents' noise then cancels as the reference's does. The p-value
    is the share of rounds whose gain, centred on the observed one, is not above ``margin``
    (with the usual +1 correction), so promoting at p < alpha is a one-sided test at level alpha.
    """
    if resamples < 1:
        raise ValueError(f"the paired test needs at least 1 resample, got {resamples}")
    ref_stats = feature_stats(ref_features) if len(ref_features) <= CHUNK else weighted_stats(
        ref_features, np.ones(len(ref_features), np.int64))
    fid_champion, fid_candidate = fid_of_features(champion, *ref_stats), fid_of_features(candidate, *ref_stats)
    gain = fid_champion - fid_candidate
    if shared_latents and len(candidate) != len(champion):
        raise ValueError(f"shared latents need as many rows on both sides, got {len(candidate)} and {len(champion)}")
    rng = np.random.default_rng(seed)
    gains = np.empty(resamples)
    for b in range(resamples):
        rs = weighted_stats(ref_features, _counts(rng, len(ref_features)))
        c_old = _counts(rng, len(champion))
        c_new = c_old if shared_latents else _counts(rng, len(candidate))
        gains[b] = weighted_frechet(champion, c_old, *rs) - weighted_frechet(candidate, c_new, *rs)
    s = Spread.of(gains, gain)
    centred = gains - gains.mean() + gain  # the resampling bias removed, as in Spread
    p = (1 + int(np.sum(centred <= margin))) / (resamples + 1)
    return PairedTest(float(gain), s.se, s.low, s.high, float(p), resamples, float(fid_champion), float(fid_candidate))
