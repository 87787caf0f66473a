"""Copied training images: how many generated images sit on top of a training image.

In the evaluator's feature space, each image ``x`` has a nearest training image ``t``, and ``t``
has its own nearest *other* training image ``t'``. ``x`` counts as a copy when it is closer to
``t`` than ``t'`` is: ``d(x, t) <= d(t, t')`` (the authenticity rule of Alaa et al. 2022, "How
Faithful is your Synthetic Data?"). The copy rate is the share of generated images that are
copies. Held-out real images, which were never trained on, get a rate of their own by the same
rule: that is the floor, the rate of an honest generator that draws new images from the data's
distribution. A generator that hands back training images scores about 100%.

Distances are Euclidean between feature vectors, computed a block at a time: memory is one
block of distances, whatever the number of training images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_BYTES = 64 << 20
"""At most this much memory for one block of squared distances (float32)."""


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def nearest(queries: np.ndarray, train: np.ndarray, exclude_self: bool = False,
            block: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(index, distance) of each query's nearest training row; ``exclude_self`` skips the row
    with the query's own index (queries are the training rows themselves)."""
    # float32 distances find the nearest row; its distance is then recomputed exactly in
    # float64 from the difference (the expanded form cancels badly for near-copies)
    q, t = np.asarray(queries, np.float32), np.asarray(train, np.float32)
    tn = _sq_norms(t)
    block = block or max(1, BLOCK_BYTES // (4 * len(t)))
    idx = np.empty(len(q), np.int64)
    for a in range(0, len(q), block):
        qb = q[a:a + block]
        d2 = _sq_norms(qb)[:, None] + tn[None, :] - 2.0 * qb @ t.T
        if exclude_self:
            rows = np.arange(len(qb))
            d2[rows, a + rows] = np.inf
        idx[a:a + block] = np.argmin(d2, axis=1)
    diff = np.asarray(queries, np.float64) - np.asarray(train, np.float64)[idx]
    dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return idx, dist


@dataclass(frozen=True)
class Copies:
    """Per-image results of :func:`copy_test`."""

    nearest: np.ndarray
    """Index of each image's nearest training image."""
    distance: np.ndarray
    """Its distance to it."""
    copied: np.ndarray
    """Whether it counts as a copy."""

    @property
    def rate(self) -> float:
        return float(np.mean(self.copied))


class CopyTest:
    """The training set's own nearest-neighbour distances, computed once, then any image set."""

    def __init__(self, train_features: np.ndarray) -> None:
        if len(train_features) < 2:
            raise ValueError(f"the copy test needs at least 2 training images, got {len(train_features)}")
        self.train = train_features
        _, self.own = nearest(self.train, self.train, exclude_self=True)

    def rate_of(self, features: np.ndarray) -> float:
        return self(features).rate

    def __call__(self, features: np.ndarray) -> Copies:
        idx, dist = nearest(features, self.train)
        return Copies(idx, dist, dist <= self.own[idx])  # <=: an exact copy of a duplicated image too


def closest_pairs(c: Copies, k: int = 8) -> list[tuple[int, int, float]]:
    """The ``k`` generated images closest to a training image: (generated index, training
    index, distance), closest first."""
    order = np.argsort(c.distance, kind="stable")[:k]
    return [(int(i), int(c.nearest[i]), float(c.distance[i])) for i in order]
