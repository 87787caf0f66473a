"""Our metrics against the reference implementations, on the same feature arrays."""

import numpy as np
import pytest
import torch

from dcgan.metrics.fid import feature_stats, frechet_distance
from dcgan.metrics.kid import kernel_inception_distance, polynomial_mmd2
from dcgan.metrics.prdc import precision_recall


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(600, 32))
    b = rng.normal(size=(600, 32)) @ rng.normal(scale=0.4, size=(32, 32)) + 0.3
    return a, b


def test_fid_equals_pytorch_fid(feats):
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = feats
    (m1, s1), (m2, s2) = feature_stats(a), feature_stats(b)
    ours = frechet_distance(m1, s1, m2, s2)
    ref = calculate_frechet_distance(m1, s1, m2, s2)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_fid_equals_torchmetrics(feats):
    from torchmetrics.image.fid import _compute_fid

    a, b = feats
    (m1, s1), (m2, s2) = feature_stats(a), feature_stats(b)
    ref = _compute_fid(torch.from_numpy(m1), torch.from_numpy(s1), torch.from_numpy(m2), torch.from_numpy(s2))
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(float(ref), rel=1e-6)


def test_kid_matches_torchmetrics_poly_mmd(feats):
    from torchmetrics.image.kid import poly_mmd

    a, b = feats
    ref = poly_mmd(torch.from_numpy(a[:200]), torch.from_numpy(b[:200]), degree=3, gamma=None, coef=1.0)
    assert polynomial_mmd2(a[:200], b[:200]) == pytest.approx(float(ref), rel=1e-9)
    # one subset holding every image is exactly that MMD
    mean, std = kernel_inception_distance(a[:200], b[:200], subsets=1, subset_size=200)
    assert mean == pytest.approx(float(ref), rel=1e-9) and std == 0.0


def test_kid_is_unbiased_near_zero_for_the_same_distribution():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    mean, std = kernel_inception_distance(x, y, subsets=50, subset_size=200, seed=0)
    assert abs(mean) < 3 * std / np.sqrt(50) + 1e-3  # unbiased: centred on 0, can be negative
    shifted, _ = kernel_inception_distance(x, y + 0.5, subsets=50, subset_size=200, seed=0)
    assert shifted > 10 * abs(mean)


def test_precision_recall_real_vs_real_near_one():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    p, r = precision_recall(x, y, k=3)
    assert p > 0.85 and r > 0.85  # k=3 balls miss a few points of the same distribution


def test_precision_recall_see_mode_collapse():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(1000, 8))
    collapsed = rng.normal(scale=0.2, size=(1000, 8))  # all fakes near one spot of the real data
    p, r = precision_recall(real, collapsed, k=3)
    assert p > 0.9 and r < 0.3  # realistic but not diverse
    off = rng.normal(size=(1000, 8)) + 6.0  # diverse but not realistic
    p2, _ = precision_recall(real, off, k=3)
    assert p2 < 0.05
