"""The bootstrap behind each score's ±, the gate's paired FID test, and the copy test: each
checked against what it claims (calibration on data whose truth is known), not just run."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan.metrics.copies import CopyTest, closest_pairs, nearest
from dcgan.metrics.fid import feature_stats, weighted_frechet
from dcgan.metrics.uncertainty import Spread, bootstrap, paired_fid, weighted_stats
from tests.helpers import fid_from_features

D = 8


def gaussian(rng, n, shift=0.0):
    return rng.normal(size=(n, D)) + shift


def test_weighted_stats_is_the_stats_of_the_repeated_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, D)).astype(np.float32)
    counts = rng.multinomial(50, np.full(50, 1 / 50))
    mu, sigma = weighted_stats(x, counts)
    mu2, sigma2 = feature_stats(np.repeat(x, counts, axis=0))
    np.testing.assert_allclose(mu, mu2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sigma, sigma2, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("n", "d"), [(300, 8), (40, 256)])  # n >= D: the D×D form; n < D: the n×n one
def test_the_resampled_fid_is_frechet_distance(n, d):
    rng = np.random.default_rng(6)
    gen, ref = rng.normal(size=(n, d)), rng.normal(size=(3 * d, d)) * 1.2 + 0.1
    counts = rng.multinomial(n, np.full(n, 1 / n))
    want = fid_from_features(np.repeat(gen, counts, axis=0), ref)
    assert weighted_frechet(gen, counts, *feature_stats(ref)) == pytest.approx(want, rel=1e-6)


def test_bootstrap_standard_error_matches_the_spread_over_fresh_samples():
    """The bootstrap SE of FID from one generated set is about the standard deviation of FID
    over 40 independent generated sets of the same distribution (within 40%, both ways)."""
    rng = np.random.default_rng(1)
    ref = gaussian(rng, 2000)
    fresh = [fid_from_features(gaussian(rng, 300, 0.3), ref) for _ in range(40)]
    gen = gaussian(rng, 300, 0.3)
    b = bootstrap({"fid": fid_from_features(gen, ref)}, gen, None, ref, ("fid",), 200, seed=0)
    ratio = b["fid_se"] / np.std(fresh, ddof=1)
    assert 0.6 < ratio < 1.4, ratio
    assert b["fid_ci_low"] < fid_from_features(gen, ref) < b["fid_ci_high"]


def test_bootstrap_is_seeded_and_off_at_zero():
    rng = np.random.default_rng(2)
    gen, ref = gaussian(rng, 100), gaussian(rng, 300)
    est = {"fid": fid_from_features(gen, ref), "kid_mean": 0.0}
    a = bootstrap(est, gen, None, ref, ("fid", "kid"), 20, seed=5, kid_subset_size=50)
    assert a == bootstrap(est, gen, None, ref, ("fid", "kid"), 20, seed=5, kid_subset_size=50)
    assert set(a) == {f"{k}_{s}" for k in ("fid", "kid_mean") for s in ("se", "ci_low", "ci_high")}
    assert bootstrap(est, gen, None, ref, ("fid",), 0, seed=5) == {}


def test_spread_centres_the_interval_on_the_estimate():
    s = Spread.of(np.array([2.0, 3.0, 4.0, 5.0, 6.0]), estimate=1.0)  # resamples biased by +3
    assert s.low < 1.0 < s.high and s.high - s.low == pytest.approx(3.8)


def test_paired_test_promotes_equal_models_at_most_about_alpha():
    """Two generated sets of one distribution: p < 0.05 in at most 4 of 40 trials (level 5%:
    2 expected; a test that ignored the noise would pass about half)."""
    rng = np.random.default_rng(3)
    ref = gaussian(rng, 1000)
    shift = 0.2
    p = [paired_fid(gaussian(rng, 200, shift), gaussian(rng, 200, shift), ref, 100, seed=t).p_value
         for t in range(40)]
    assert sum(x < 0.05 for x in p) <= 4, sorted(p)[:6]


def test_paired_test_finds_a_clearly_better_model_and_respects_the_margin():
    rng = np.random.default_rng(4)
    ref = gaussian(rng, 1000)
    better, worse = gaussian(rng, 300, 0.1), gaussian(rng, 300, 0.5)
    t = paired_fid(better, worse, ref, 200, seed=0)
    assert t.gain > 0 and t.low > 0 and t.p_value < 0.01
    assert paired_fid(worse, better, ref, 200, seed=0).p_value > 0.95
    assert paired_fid(better, worse, ref, 200, seed=0, margin=10 * t.gain).p_value > 0.95


def test_nearest_excludes_self_and_finds_exact_distances():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]], np.float32)
    idx, dist = nearest(x, x, exclude_self=True, block=2)
    assert idx.tolist() == [2, 2, 0] and dist.tolist() == pytest.approx([1.0, np.hypot(3, 3), 1.0])


def test_copy_test_counts_training_images_and_spares_new_ones():
    rng = np.random.default_rng(5)
    train, held = gaussian(rng, 500), gaussian(rng, 300)
    ct = CopyTest(train)
    assert ct.rate_of(train[:200]) == 1.0  # handed-back training images
    assert ct.rate_of(train[:200] + 1e-3) == 1.0  # ... with a little noise
    honest = ct.rate_of(held)
    assert 0.05 < honest < 0.8  # the floor: new draws are sometimes nearer than a neighbour
    half = np.concatenate([train[:150], gaussian(rng, 150)])
    assert ct.rate_of(half) == pytest.approx(0.5 + honest / 2, abs=0.1)
    pairs = closest_pairs(ct(half), 8)
    assert len(pairs) == 8 and all(d == 0 for _, _, d in pairs) and all(g < 150 for g, _, _ in pairs)


def test_copy_test_needs_two_training_images():
    with pytest.raises(ValueError, match="at least 2 training images"):
        CopyTest(np.zeros((1, D)))


def test_shared_latents_resample_both_sets_jointly():
    """Issue 38: row i of both sets came from one latent z. Resampled jointly, the latents' noise
    cancels: a small real gain (a generator a little closer to the reference's spread) is found
    where independent resampling cannot tell; equal generators stay at about alpha."""
    rng = np.random.default_rng(7)
    ref = rng.standard_normal((1000, 8))
    z = rng.standard_normal((400, 8))
    joint = paired_fid(z * 1.10, z * 1.15, ref, 200, seed=0, shared_latents=True)
    apart = paired_fid(z * 1.10, z * 1.15, ref, 200, seed=0)
    assert joint.low > 0 and joint.p_value < 0.01, joint
    assert apart.low < 0 and apart.p_value > 0.02, apart
    assert joint.high - joint.low < (apart.high - apart.low) / 3
    p = []
    for t in range(40):
        z = rng.standard_normal((300, 8))
        a, b = (z + 0.3 * rng.standard_normal((300, 8)) for _ in range(2))
        p.append(paired_fid(a, b, ref, 100, seed=t, shared_latents=True).p_value)
    assert sum(x < 0.05 for x in p) <= 4, sorted(p)[:6]
    with pytest.raises(ValueError, match="as many rows"):
        paired_fid(z[:10], z[:11], ref, 10, seed=0, shared_latents=True)
