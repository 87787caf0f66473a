"""Scoring generated images against real ones in one feature pass.

The floor: the same metrics for held-out real images against the training set, at the same
sample size. A perfect generator would score about the floor; FID is biased upward at small
sample sizes, so generated FID is only comparable to a floor measured with the same n.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dcgan.errors import UserError
from dcgan.metrics.features import Classifier, extract
from dcgan.metrics.fid import feature_stats, frechet_distance
from dcgan.metrics.inception_score import inception_score


def min_samples(feature_dim: int) -> int:
    """Fewest images for a full-rank covariance of feature_dim features."""
    return feature_dim + 1


def score(samples: np.ndarray, train: np.ndarray, holdout: np.ndarray, model: Classifier,
          n: int, is_splits: int, batch_size: int, device: torch.device) -> dict[str, Any]:
    """FID and IS of ``n`` samples, and their floors from ``n`` holdout images, vs the train set."""
    dim = model.cfg.feature_dim
    if n < min_samples(dim):
        raise UserError(
            f"scoring {n} images is too few for a stable FID with {dim}-d features: at least "
            f"{min_samples(dim)} are needed (raise sample.num_samples / holdout size, or lower "
            f"evaluator.feature_dim)"
        )
    if len(samples) < n or len(holdout) < n:
        raise UserError(
            f"evaluate needs {n} generated and {n} held-out images, have {len(samples)} and "
            f"{len(holdout)} (lower evaluate.num_samples or raise sample.num_samples)"
        )
    f_train, _ = extract(model, train, batch_size, device, "features: train")
    f_gen, l_gen = extract(model, samples[:n], batch_size, device, "features: samples")
    f_hold, l_hold = extract(model, holdout[:n], batch_size, device, "features: holdout")
    ref = feature_stats(f_train)
    is_mean, is_std = inception_score(l_gen, is_splits)
    is_floor, _ = inception_score(l_hold, is_splits)
    return {
        "fid": frechet_distance(*feature_stats(f_gen), *ref),
        "fid_floor": frechet_distance(*feature_stats(f_hold), *ref),
        "is_mean": is_mean,
        "is_std": is_std,
        "is_floor": is_floor,
        "n_samples": int(n),
        "n_reference": int(len(train)),
    }
