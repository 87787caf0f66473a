"""Extractor outputs for one image set, and the training set's statistics in feature space."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcgan.metrics.fid import feature_stats


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
        return cls(features, *feature_stats(features))
