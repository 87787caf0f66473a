"""Scoring generated images against the training set, beside the real-data floor.

The floor: the same metrics for held-out real images against the training set, at the same
sample size n. A perfect generator would score about the floor. FID and KID are biased at
small n, so a generated score is only comparable to a floor measured with the same n.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from dcgan.errors import UserError
from dcgan.metrics import registry
from dcgan.metrics.registry import FeatureSet, Reference


def min_samples(feature_dim: int) -> int:
    """Fewest images for a full-rank covariance of feature_dim features."""
    return feature_dim + 1


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_sample_size(n: int, feature_dim: int, n_samples: int, n_holdout: int,
                      warn: Callable[[str], None] = _stderr) -> bool:
    """Refuse impossible sample counts; warn (and return False) when FID will be unstable."""
    if n < 2:
        raise UserError(f"evaluate needs at least 2 images to score, got {n}")
    if n_samples < n or n_holdout < n:
        raise UserError(
            f"evaluate needs {n} generated and {n} held-out images, have {n_samples} and "
            f"{n_holdout} (lower evaluate.num_samples or raise sample.num_samples)"
        )
    if n < min_samples(feature_dim):
        warn(
            f"warning: scoring {n} images with {feature_dim}-d features: FID is unstable below "
            f"{min_samples(feature_dim)} images (the covariance is rank-deficient); score more "
            f"images (prepare.holdout_fraction, sample.num_samples) or use fewer feature dimensions"
        )
        return False
    return True


def _take(fs: FeatureSet, n: int) -> FeatureSet:
    return FeatureSet(fs.features[:n], None if fs.logits is None else fs.logits[:n])


def score(gen: FeatureSet, holdout: FeatureSet, ref: Reference, names: tuple[str, ...], opts: Any,
          seed: int, n: int, warn: Callable[[str], None] = _stderr) -> dict[str, float]:
    """Each named metric for n generated images, and ``<key>_floor`` for n held-out ones."""
    check_sample_size(n, ref.features.shape[1], len(gen.features), len(holdout.features), warn)
    out: dict[str, float] = {}
    for name in names:
        fn = registry.get(name)
        out.update(fn(_take(gen, n), ref, opts, seed))
        out.update({f"{k}_floor": v for k, v in fn(_take(holdout, n), ref, opts, seed).items()})
    return out
