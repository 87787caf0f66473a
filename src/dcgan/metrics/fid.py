"""Fréchet distance between Gaussians fitted to feature sets (FID), in float64.

FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), as in pytorch-fid / the TTUR reference:
scipy's sqrtm, with a small diagonal offset when the product is singular.

:func:`fid_of_features` is what the stages call with a generated set's features: with more
rows than dimensions it is exactly that computation; with at most as many (8 samples, or 1,000,
against 2,048-d Inception features) the generated covariance is singular, where sqrtm is
unreliable and slow (13 s for 2,048-d on 2 CPU cores), and the trace comes from an n×n
symmetric eigenproblem instead: the same quantity, exactly (:func:`weighted_frechet`).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


class StreamingStats:
    """Mean and unbiased covariance of features fed a chunk at a time, in float64 (Chan et al.'s
    pairwise update): memory is one chunk and a (D, D) matrix, whatever the number of rows.

    Fed a single chunk, the result is :func:`feature_stats` of it, bit for bit; over several
    chunks it equals it up to float64 rounding.
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self._single: np.ndarray | None = None

    def add(self, chunk: np.ndarray) -> None:
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"need features of shape (N >= 1, D), got {x.shape}")
        if self.n == 0:
            self._single = x
        else:
            if self._single is not None:  # a second chunk: fold the first into the sums
                first, self._single = self._single, None
                self.mean, self.m2 = first.mean(axis=0), _scatter(first)
            mean_b = x.mean(axis=0)
            delta = mean_b - self.mean
            n_ab = self.n + len(x)
            self.mean = self.mean + delta * (len(x) / n_ab)
            self.m2 = self.m2 + _scatter(x) + np.outer(delta, delta) * (self.n * len(x) / n_ab)
        self.n += len(x)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean (D,), unbiased covariance (D, D))."""
        if self._single is not None:
            return feature_stats(self._single)
        if self.n < 2:
            raise ValueError(f"need at least 2 feature rows, got {self.n}")
        return self.mean, self.m2 / (self.n - 1)


def _scatter(x: np.ndarray) -> np.ndarray:
    c = x - x.mean(axis=0)
    return c.T @ c


def stats_in_chunks(features: np.ndarray, rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """:func:`feature_stats` of float32/float64 features ``rows`` at a time (no float64 copy of
    the whole set): exactly feature_stats when they fit one chunk."""
    acc = StreamingStats()
    for a in range(0, len(features), rows):
        acc.add(features[a:a + rows])
    return acc.result()


def _trace_sqrt_product_eig(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) from the eigenvalues of S1 S2, which are real and >= 0 for PSD S1, S2.

    Stable where sqrtm is not: rank-deficient covariances from fewer images than dimensions.
    """
    eig = np.linalg.eigvals(sigma1 @ sigma2)
    return float(np.sqrt(eig.astype(np.complex128)).real.sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """FID between N(mu1, sigma1) and N(mu2, sigma2), computed as pytorch-fid does.

    When sqrtm breaks down (non-finite result, or a large imaginary part: covariances of
    fewer images than feature dimensions), the trace term comes from eigenvalues instead.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # dead ReLU units make feature covariances singular; sqrtm still returns the right
        # root in the usual case (checked against pytorch-fid in the tests)
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.isfinite(covmean).all() and (
            not np.iscomplexobj(covmean) or np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)):
        tr_covmean = float(np.trace(covmean.real))
    else:
        tr_covmean = _trace_sqrt_product_eig(sigma1, sigma2)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def weighted_frechet(features: np.ndarray, counts: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray) -> float:
    """FID of the rows of ``features`` (N, D), row i counted ``counts[i]`` times (a bootstrap
    resample; all ones for the set itself), against N(mu_r, sigma_r), from symmetric eigenvalues.

    Tr((S_g S_r)^(1/2)) is the sum of the square roots of the eigenvalues of A S_r A^T, where
    S_g = A^T A (A: the centred, weighted rows over sqrt(n - 1)): an n×n symmetric problem,
    exact, and far cheaper than a D×D sqrtm when n < D (2,048-d Inception features); with
    n >= D the D×D symmetric form sqrt(S_g) S_r sqrt(S_g) is used. Equal to
    :func:`frechet_distance` up to float64 rounding (tested)."""
    x = np.asarray(features, np.float64)
    w = counts.astype(np.float64)
    n = w.sum()
    mu_g = w @ x / n
    a = (x - mu_g) * np.sqrt(w / (n - 1))[:, None]  # (rows, D): S_g = a^T a
    keep = w > 0
    a = a[keep]
    if len(a) < x.shape[1]:
        m = a @ sigma_r @ a.T
    else:
        vals, vecs = np.linalg.eigh(a.T @ a)
        root = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
        m = root @ sigma_r @ root
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu_g - mu_r
    return float(diff @ diff + np.einsum("ij,ij->", a, a) + np.trace(sigma_r) - 2 * tr_sqrt)


def fid_of_features(features: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray) -> float:
    """FID of a generated set's features (N, D) against the reference's (mu, sigma).

    N > D: :func:`frechet_distance` of their mean and covariance, pytorch-fid's computation bit
    for bit. N <= D (the generated covariance is singular): :func:`weighted_frechet`, the same
    quantity from an N×N symmetric eigenproblem, where sqrtm of a singular product is slow and
    may break down."""
    f = np.asarray(features)
    if f.ndim == 2 and 2 <= len(f) <= f.shape[1]:
        return weighted_frechet(f, np.ones(len(f), np.int64), np.asarray(mu_r, np.float64),
                                np.asarray(sigma_r, np.float64))
    return frechet_distance(*feature_stats(features), mu_r, sigma_r)
