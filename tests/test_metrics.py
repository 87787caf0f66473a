import numpy as np
import pytest
import torch

from dcgan.core.errors import UserError
from dcgan.metrics.classifier import ClassifierConfig, extract, train_classifier
from dcgan.metrics.fid import feature_stats, frechet_distance
from dcgan.metrics.inception_score import inception_score
from tests.helpers import fid_from_features


def test_fid_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(0).normal(size=(500, 16))
    assert abs(fid_from_features(f, f)) < 1e-6


def test_fid_matches_the_closed_form_for_diagonal_gaussians():
    # for diagonal covariances FID = |mu1-mu2|^2 + sum_i (s1_i - s2_i)^2 with s = std
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    fid = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    expected = ((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum()
    assert fid == pytest.approx(expected, rel=1e-9)


def test_fid_grows_with_a_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 8))
    fids = [fid_from_features(a, rng.normal(size=(400, 8)) + s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert fids == sorted(fids)
    assert fids[-1] == pytest.approx(8 * 4.0, rel=0.15)


def test_feature_stats_are_float64_and_unbiased():
    f = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
    mu, cov = feature_stats(f)
    assert mu.dtype == np.float64 and cov.dtype == np.float64
    np.testing.assert_allclose(cov, np.cov(f.astype(np.float64), rowvar=False))


def test_inception_score_bounds():
    k = 10
    uniform = np.zeros((100, k))
    assert inception_score(uniform, 5)[0] == pytest.approx(1.0)
    confident = np.full((100, k), -50.0)
    confident[np.arange(100), np.arange(100) % k] = 50.0
    mean, std = inception_score(confident, 5)
    assert mean == pytest.approx(k, rel=1e-6) and std < 1e-6
    one_class = np.full((100, k), -50.0)
    one_class[:, 3] = 50.0
    assert inception_score(one_class, 5)[0] == pytest.approx(1.0)


def test_inception_score_matches_the_formula():
    logits = np.random.default_rng(3).normal(size=(60, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for part in np.split(p, 3):
        py = part.mean(0)
        scores.append(np.exp((part * (np.log(part) - np.log(py))).sum(1).mean()))
    mean, std = inception_score(logits, 3)
    assert mean == pytest.approx(np.mean(scores)) and std == pytest.approx(np.std(scores))


def _digits(n=400):
    from tests.helpers import load_dataset

    raw = load_dataset("digits", ".", 16, 1, max_images=n)
    return raw.images, raw.labels


def test_classifier_learns_digits():
    x, y = _digits(600)
    cfg = ClassifierConfig(16, 1, 10, 16, 16)
    model = train_classifier(x[:500], y[:500], cfg, epochs=15, batch_size=50, lr=5e-3, seed=0,
                             device=torch.device("cpu"))
    feats, logits = extract(model, x[500:], 64, torch.device("cpu"))
    assert feats.shape == (100, 2 * 16 + 16) and logits.shape == (100, 10)  # stage-1 mean, std; embedding
    assert (logits.argmax(1) == y[500:]).mean() > 0.7


def test_multiscale_features_are_each_stages_statistics_then_the_embedding():
    from dcgan.metrics.classifier import Classifier

    torch.manual_seed(0)
    model = Classifier(ClassifierConfig(32, 3, 5, 8, 12)).eval()  # stages 32->16 (8), 16->8 (16), 8->4 (32)
    assert model.stage_widths == [8, 16] and model.out_dim == 2 * (8 + 16) + 12
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        feats, logits = model.features(x)
        emb, lg = model(x)
        s1 = model.body[:6](x)  # conv, BN, ReLU, stride-2 conv, BN, ReLU
        s2 = model.body[6:12](s1)
    assert feats.shape == (6, model.out_dim)
    torch.testing.assert_close(feats[:, -12:], emb, rtol=0, atol=0)
    torch.testing.assert_close(logits, lg, rtol=0, atol=0)
    torch.testing.assert_close(feats[:, :8], s1.mean((2, 3)))
    torch.testing.assert_close(feats[:, 8:16], s1.std((2, 3)))
    torch.testing.assert_close(feats[:, 16:32], s2.mean((2, 3)))
    torch.testing.assert_close(feats[:, 32:48], s2.std((2, 3)))


def test_classifier_refuses_unlabelled_data():
    x, _ = _digits(20)
    with pytest.raises(UserError, match="needs labelled data"):
        train_classifier(x, np.full(20, -1), ClassifierConfig(16, 1, 10, 4, 4), 1, 10, 1e-3, 0,
                         torch.device("cpu"))


def test_too_few_samples_warns_with_the_minimum():
    from dcgan.metrics.suite import check_sample_size

    msgs: list[str] = []
    assert check_sample_size(20, 32, 100, 100, msgs.append) is False
    assert "FID is unstable below 33 images" in msgs[0]
    assert check_sample_size(40, 32, 100, 100, msgs.append) is True and len(msgs) == 1
    with pytest.raises(UserError, match="num_samples is 40: scoring needs 40 generated and 40 held-out images, have 30 and 100"):
        check_sample_size(40, 32, 30, 100)
    with pytest.raises(UserError, match="at least 2 images"):
        check_sample_size(1, 32, 30, 100)


def test_fid_with_fewer_images_than_dimensions_is_finite_and_consistent():
    # 12 images in 256-d: rank-deficient covariances, where sqrtm breaks down
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(12, 256)), rng.normal(size=(12, 256)) + 0.5
    fid = fid_from_features(a, b)
    assert np.isfinite(fid) and fid > fid_from_features(a, rng.normal(size=(12, 256)))
    from dcgan.metrics.fid import _trace_sqrt_product_eig

    s1, s2 = feature_stats(rng.normal(size=(300, 8)))[1], feature_stats(rng.normal(size=(300, 8)))[1]
    from scipy.linalg import sqrtm

    assert _trace_sqrt_product_eig(s1, s2) == pytest.approx(np.trace(sqrtm(s1 @ s2)).real, rel=1e-9)
