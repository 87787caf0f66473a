"""Sample-quality metrics as small functions in a registry, validated by name at params load.

Each metric takes the generated set's features (and logits), the reference (training-set)
features and the evaluate options, and returns flat ``{key: value}``. All metrics of a run
share one feature pass; the same functions applied to held-out real images give the floor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class FeatureSet:
    """Extractor outputs for one image set: features (N, D) and class logits (N, K) or None."""

    features: np.ndarray
    logits: np.ndarray | None = None


@dataclass
class Reference:
    """The training set in feature space: all features plus their float64 mean/covariance."""

    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray

    @classmethod
    def from_features(cls, features: np.ndarray) -> Reference:
        from dcgan.metrics.fid import feature_stats

        return cls(features, *feature_stats(features))


MetricFn = Callable[[FeatureSet, Reference, Any, int], dict[str, float]]
_METRICS: dict[str, MetricFn] = {}


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    def deco(fn: MetricFn) -> MetricFn:
        _METRICS[name] = fn
        return fn

    return deco


def metric_names() -> tuple[str, ...]:
    return tuple(_METRICS)


def get(name: str) -> MetricFn:
    return _METRICS[name]


@register("fid")
def _fid(gen: FeatureSet, ref: Reference, opts: Any, seed: int) -> dict[str, float]:
    from dcgan.metrics.fid import feature_stats, frechet_distance

    return {"fid": frechet_distance(*feature_stats(gen.features), ref.mu, ref.sigma)}


@register("is")
def _is(gen: FeatureSet, ref: Reference, opts: Any, seed: int) -> dict[str, float]:
    from dcgan.metrics.inception_score import inception_score

    if gen.logits is None:
        raise ValueError("the Inception Score needs class logits from the extractor")
    mean, std = inception_score(gen.logits, opts.is_splits)
    return {"is_mean": mean, "is_std": std}


@register("kid")
def _kid(gen: FeatureSet, ref: Reference, opts: Any, seed: int) -> dict[str, float]:
    from dcgan.metrics.kid import kernel_inception_distance

    mean, std = kernel_inception_distance(ref.features, gen.features, opts.kid_subsets,
                                          opts.kid_subset_size, seed)
    return {"kid_mean": mean, "kid_std": std}


@register("pr")
def _pr(gen: FeatureSet, ref: Reference, opts: Any, seed: int) -> dict[str, float]:
    from dcgan.metrics.prdc import precision_recall

    # equal-sized real and generated sets: a seeded subset of the reference, same for every run
    n = len(gen.features)
    idx = np.random.default_rng(seed).permutation(len(ref.features))[:n]
    precision, recall = precision_recall(ref.features[idx], gen.features, opts.pr_k)
    return {"precision": precision, "recall": recall}
