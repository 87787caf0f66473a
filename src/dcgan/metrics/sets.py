"""Extractor outputs for one image set, and the training set's statistics in feature space."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcgan.metrics.fid import stats_in_chunks


@dataclass
class FeatureSet:
    """Extractor outputs for one image set: features (N, D) and class logits (N, K) or None
    (float32, as the networks compute them; the metrics work in float64)."""

    features: np.ndarray
    logits: np.ndarray | None = None


@dataclass
class Reference:
    """The training set in feature space: the float64 mean/covariance FID compares with, and
    the features themselves (KID, precision/recall; None where only FID is needed)."""

    features: np.ndarray | None
    mu: np.ndarray
    sigma: np.ndarray

    @classmethod
    def from_features(cls, features: np.ndarray) -> Reference:
        return cls(features, *stats_in_chunks(features))
