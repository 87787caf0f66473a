"""Improved precision and recall (Kynkäänniemi et al. 2019) on k-NN manifolds.

Each set's manifold is the union of balls around its points, each ball's radius the distance
to that point's k-th nearest neighbour within the set. Precision: share of generated points
inside the real manifold; recall: share of real points inside the generated manifold.
"""

from __future__ import annotations

import numpy as np
import torch


def _cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def knn_radii(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of x (N, D) to its k-th nearest other row."""
    if len(x) <= k:
        raise ValueError(f"k-NN with k={k} needs more than {k} points, got {len(x)}")
    out = []
    for start in range(0, len(x), chunk):
        d = _cdist(x[start:start + chunk], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(out)


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> float:
    """Share of ``points`` within distance radii[j] of some centres[j]."""
    inside = []
    for start in range(0, len(points), chunk):
        d = _cdist(points[start:start + chunk], centres)
        inside.append((d <= radii[None, :]).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    r = torch.as_tensor(np.asarray(real, np.float64))
    f = torch.as_tensor(np.asarray(fake, np.float64))
    precision = _coverage(f, r, knn_radii(r, k))
    recall = _coverage(r, f, knn_radii(f, k))
    return precision, recall
