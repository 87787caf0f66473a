"""Metrics behave as they should on real images, in the classifier's feature space."""

import numpy as np
import pytest
import torch

from dcgan.app.params.typed import fill_from
from dcgan.app.params.whole import parse_params
from dcgan.metrics.classifier import ClassifierConfig, extract, train_classifier
from dcgan.metrics.registry import CATALOGUE, metric_names
from dcgan.metrics.sets import FeatureSet, Reference
from dcgan.metrics.suite import ScoreOptions, score
from tests.conftest import tiny_params
from tests.helpers import load_dataset

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits_and_net():
    raw = load_dataset("digits", ".", 16, 1)
    x, y = raw.images, raw.labels
    net = train_classifier(x[:1200], y[:1200], ClassifierConfig(16, 1, 10, 16, 16), 10, 50, 5e-3, 0, CPU)
    return x, net


def fs(net, images):
    return FeatureSet(*extract(net, images, 256, CPU))


def test_fid_rises_monotonically_with_noise(digits_and_net):
    x, net = digits_and_net
    ref = Reference.from_features(fs(net, x[:1200]).features)
    hold = x[1200:1600]
    rng = np.random.default_rng(0)
    fids = []
    for sigma in (0, 20, 40, 80, 120):
        noisy = np.clip(hold.astype(float) + rng.normal(scale=sigma, size=hold.shape), 0, 255).astype(np.uint8)
        f = fs(net, noisy).features
        from dcgan.metrics.fid import feature_stats, frechet_distance

        fids.append(frechet_distance(*feature_stats(f), ref.mu, ref.sigma))
    assert fids == sorted(fids), fids
    assert fids[-1] > 5 * fids[0]


def test_suite_scores_real_data_like_its_floor(digits_and_net):
    x, net = digits_and_net
    opts = fill_from(ScoreOptions, parse_params(tiny_params(evaluate={"kid_subset_size": 100})).evaluate)
    ref = Reference.from_features(fs(net, x[:1200]).features)
    hold = fs(net, x[1200:1500])
    other_real = fs(net, x[1500:1797])
    m = score(other_real, hold, ref, metric_names(), opts, 0, 290)
    # each catalogue metric writes exactly the keys the catalogue says, and their floors
    # (read from dcgan.metrics.registry: a new metric is checked here without an edit)
    keys = [k.key for name in metric_names() for k in CATALOGUE[name].keys]
    assert sorted(m) == sorted(keys + [f"{k}_floor" for k in keys])
    assert m["fid"] == pytest.approx(m["fid_floor"], rel=0.5, abs=0.5)
    assert m["precision"] > 0.8 and m["recall"] > 0.8
    assert m["is_mean"] == pytest.approx(m["is_mean_floor"], rel=0.15)
    noise = np.random.default_rng(0).integers(0, 256, (290, 1, 16, 16), dtype=np.uint8)
    bad = score(fs(net, noise), hold, ref, metric_names(), opts, 0, 290)
    assert bad["fid"] > 5 * m["fid"] and bad["kid_mean"] > 5 * m["kid_mean"]
    assert bad["precision"] < m["precision"] and bad["is_mean"] < m["is_mean"]
