"""Scoring generated images against the training set, beside the real-data floor.

Each metric of the catalogue (:mod:`dcgan.metrics.registry`) is a small function here that
takes the generated set's features (and logits), the reference (training-set) features and
the evaluate options, and returns flat ``{key: value}``. All metrics of a run share one
feature pass; the same functions applied to held-out real images give the floor.

The floor: the same metrics for held-out real images against the training set, at the same
sample size n. A perfect generator would score about the floor. FID and KID are biased at
small n, so a generated score is only comparable to a floor measured with the same n.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dcgan.core.errors import SettingError, UserError
from dcgan.core.seeding import derive_seed
from dcgan.metrics import registry
from dcgan.metrics.copies import CopyTest
from dcgan.metrics.fid import fid_of_features
from dcgan.metrics.inception_score import inception_score
from dcgan.metrics.kid import kernel_inception_distance
from dcgan.metrics.prdc import precision_recall
from dcgan.metrics.sets import FeatureSet, Reference


@dataclass(frozen=True)
class ScoreOptions:
    """What the metrics read besides the features (the evaluate stage fills it from its section)."""

    is_splits: int
    """Splits for the Inception Score mean/std."""
    kid_subsets: int
    """Random subsets for KID's mean/std."""
    kid_subset_size: int
    """Images per KID subset (capped at the number scored)."""
    pr_k: int
    """k of the k-NN manifolds of improved precision/recall."""
    pr_max_images: int
    """Precision/recall runs on a seeded subset of at most this many images."""


MetricFn = Callable[[FeatureSet, Reference, ScoreOptions, int], dict[str, float]]


def _fid(gen: FeatureSet, ref: Reference, opts: ScoreOptions, seed: int) -> dict[str, float]:
    return {"fid": fid_of_features(gen.features, ref.mu, ref.sigma)}


def _is(gen: FeatureSet, ref: Reference, opts: ScoreOptions, seed: int) -> dict[str, float]:
    if gen.logits is None:
        raise ValueError("the Inception Score needs class logits from the extractor")
    mean, std = inception_score(gen.logits, opts.is_splits)
    return {"is_mean": mean, "is_std": std}


def _kid(gen: FeatureSet, ref: Reference, opts: ScoreOptions, seed: int) -> dict[str, float]:
    mean, std = kernel_inception_distance(ref.features, gen.features, opts.kid_subsets,
                                          opts.kid_subset_size, seed)
    return {"kid_mean": mean, "kid_std": std}


def pr_count(n: int, opts: ScoreOptions) -> int:
    """Images per side that precision/recall compares: n, at most evaluate.pr_max_images."""
    return min(n, opts.pr_max_images)


def _pr(gen: FeatureSet, ref: Reference, opts: ScoreOptions, seed: int) -> dict[str, float]:
    # equal-sized real and generated sets of m: a seeded subset of the reference, same for every
    # run, and (only past pr_max_images) a seeded subset of the scored images
    n = len(gen.features)
    m = pr_count(n, opts)
    idx = np.random.default_rng(seed).permutation(len(ref.features))[:m]
    fake = gen.features
    if m < n:
        fake = fake[np.sort(np.random.default_rng(derive_seed(seed, "pr_subset")).permutation(n)[:m])]
    precision, recall = precision_recall(ref.features[idx], fake, opts.pr_k)
    return {"precision": precision, "recall": recall}


def _copies(gen: FeatureSet, ref: Reference, opts: ScoreOptions, seed: int) -> dict[str, float]:
    if ref.features is None:
        raise ValueError("the copy rate needs the training set's features")
    return {"copy_rate": copy_test(ref).rate_of(gen.features)}


_COPY_TESTS: dict[int, tuple[Reference, CopyTest]] = {}


def copy_test(ref: Reference) -> CopyTest:
    """The reference's copy test (its own nearest-neighbour distances), built once per reference."""
    hit = _COPY_TESTS.get(id(ref))
    if hit is None or hit[0] is not ref:
        _COPY_TESTS.clear()
        hit = _COPY_TESTS[id(ref)] = (ref, CopyTest(ref.features))
    return hit[1]


@dataclass(frozen=True)
class Implementation:
    """A catalogue metric's code: its score, and the options that change its numbers."""

    score: MetricFn
    options: tuple[str, ...] = ()
    """The :class:`ScoreOptions` fields it reads."""
    protocol: Callable[[ScoreOptions, int], dict[str, int]] = lambda opts, n: {}
    """Those options as used on n scored images, under the names the protocol records (the
    promotion gate compares runs only where they agree)."""


IMPLEMENTATIONS: dict[str, Implementation] = {
    "fid": Implementation(_fid),
    "is": Implementation(_is, ("is_splits",), lambda o, n: {"is_splits": o.is_splits}),
    "kid": Implementation(_kid, ("kid_subsets", "kid_subset_size"),
                          lambda o, n: {"kid_subsets": o.kid_subsets, "kid_subset_size": min(o.kid_subset_size, n)}),
    "pr": Implementation(_pr, ("pr_k", "pr_max_images"), lambda o, n: {"pr_k": o.pr_k, "pr_images": pr_count(n, o)}),
    "copies": Implementation(_copies),
}
if set(IMPLEMENTATIONS) != set(registry.metric_names()):  # a bug: the catalogue and code disagree
    raise ImportError(f"metrics without code or catalogue entry: "
                      f"{sorted(set(IMPLEMENTATIONS) ^ set(registry.metric_names()))}")


def get(name: str) -> MetricFn:
    """The function computing metric ``name`` (one of registry.metric_names())."""
    return IMPLEMENTATIONS[name].score


def options_protocol(opts: ScoreOptions, n: int) -> dict[str, int]:
    """Every metric's options as used on n images (:attr:`Implementation.protocol`), whether or
    not this run computed it: two runs' protocols then compare key by key."""
    return {k: v for impl in IMPLEMENTATIONS.values() for k, v in impl.protocol(opts, n).items()}


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
        raise SettingError(
            "num_samples", f"is {n}: scoring needs {n} generated and {n} held-out images, have {n_samples} and "
                           f"{n_holdout} (lower it, or raise {{samples}})"
        )
    if n < min_samples(feature_dim):
        warn(
            f"warning: scoring {n} images with {feature_dim}-d features: FID is unstable below "
            f"{min_samples(feature_dim)} images (the covariance is rank-deficient); score more "
            f"images (a larger holdout and more samples) or use fewer feature dimensions"
        )
        return False
    return True


def _take(fs: FeatureSet, n: int) -> FeatureSet:
    return FeatureSet(fs.features[:n], None if fs.logits is None else fs.logits[:n])


def score(gen: FeatureSet, holdout: FeatureSet, ref: Reference, names: tuple[str, ...], opts: ScoreOptions,
          seed: int, n: int, warn: Callable[[str], None] = _stderr) -> dict[str, float]:
    """Each named metric for n generated images, and ``<key>_floor`` for n held-out ones."""
    check_sample_size(n, ref.features.shape[1], len(gen.features), len(holdout.features), warn)
    out: dict[str, float] = {}
    for name in names:
        fn = get(name)
        out.update(fn(_take(gen, n), ref, opts, seed))
        out.update({f"{k}_floor": v for k, v in fn(_take(holdout, n), ref, opts, seed).items()})
    return out
