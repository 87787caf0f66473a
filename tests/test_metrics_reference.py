"""Our metrics against the reference implementations, on the same feature arrays."""

import numpy as np
import pytest
import torch

from dcgan.metrics.fid import feature_stats, fid_of_features, frechet_distance
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


@pytest.mark.parametrize("n", [12, 32, 33, 200])
def test_fid_of_a_generated_set_equals_pytorch_fid_at_any_size(feats, n):
    """The stages' FID (fid_of_features) is pytorch-fid's: bit for bit with more samples than
    feature dimensions (n > D = 32), and to float rounding with fewer (a singular generated
    covariance: the n×n eigen form instead of sqrtm)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = feats
    gen = a[:n] * 0.8 + 0.2
    m2, s2 = feature_stats(b)
    ref = calculate_frechet_distance(*feature_stats(gen), m2, s2)
    if n > gen.shape[1]:
        assert fid_of_features(gen, m2, s2) == frechet_distance(*feature_stats(gen), m2, s2)
    assert fid_of_features(gen, m2, s2) == pytest.approx(ref, rel=1e-6)


def test_fid_equals_torch_fidelity(feats):
    # torch-fidelity's public path from features: fid_features_to_statistics, then
    # fid_statistics_to_metric (its own statistics, not ours)
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    a, b = feats
    stats = [fid_features_to_statistics(torch.from_numpy(x)) for x in (a, b)]
    ref = fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]
    assert frechet_distance(*feature_stats(a), *feature_stats(b)) == pytest.approx(ref, rel=1e-6)


def test_inception_score_equals_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    from dcgan.metrics.inception_score import inception_score

    logits = np.random.default_rng(5).normal(scale=3.0, size=(600, 10))
    ref = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=False)
    mean, std = inception_score(logits, 10)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-9)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-6)


def test_kid_equals_torch_fidelity(feats):
    # one subset holding every image: both are the unbiased MMD² of the whole sets, whatever
    # order their random subset draws put the rows in
    from torch_fidelity.metric_kid import kid_features_to_metric

    a, b = feats
    ref = kid_features_to_metric(torch.from_numpy(b[:300]), torch.from_numpy(a[:300]), kid_subsets=1,
                                 kid_subset_size=300, verbose=False, rng_seed=0,
                                 kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                 kid_kernel_poly_coef0=1)
    mean, _ = kernel_inception_distance(a[:300], b[:300], subsets=1, subset_size=300)
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-9)


@pytest.mark.parametrize("k", [3, 5])
def test_precision_recall_equal_torch_fidelity(feats, k):
    # torch-fidelity's convention: features_1 generated, features_2 real
    from torch_fidelity.metric_prc import prc_features_to_metric

    real, fake = feats[0][:400], feats[1][:400]
    ref = prc_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), prc_neighborhood=k,
                                 prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    assert precision_recall(real, fake, k) == (pytest.approx(ref["precision"], abs=1e-12),
                                               pytest.approx(ref["recall"], abs=1e-12))


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
