import numpy as np

from dcgan.data.augment import Augmentation, augment


def params(**kw) -> Augmentation:
    base = dict(copies=2, hflip=False, crop_scale_min=0.8, rotate_degrees=8.0, translate=0.05)
    return Augmentation(**{**base, **kw})


def images(n=6, size=16) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.zeros((n, 1, size, size), np.uint8)
    x[:, :, 4:12, 3:7] = rng.integers(100, 256, (n, 1, 8, 4))  # a bar left of centre
    return x


def test_copies_are_appended_after_originals():
    x = images()
    out = augment(x, params(), seed=0)
    assert out.shape == (3 * len(x), 1, 16, 16) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[: len(x)], x)
    assert not np.array_equal(out[len(x):2 * len(x)], x)  # copies really differ


def test_zero_copies_is_identity():
    x = images()
    assert augment(x, params(copies=0), seed=0) is x


def test_deterministic_for_a_seed_and_different_across_seeds():
    x = images()
    a, b, c = augment(x, params(), 1), augment(x, params(), 1), augment(x, params(), 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_no_op_settings_reproduce_the_originals():
    x = images()
    out = augment(x, params(copies=1, crop_scale_min=1.0, rotate_degrees=0.0, translate=0.0), seed=0)
    np.testing.assert_array_equal(out[len(x):], x)


def test_hflip_mirrors_some_and_only_when_enabled():
    x = images(n=40)
    flat = params(copies=1, crop_scale_min=1.0, rotate_degrees=0.0, translate=0.0)
    out = augment(x, Augmentation(**{**flat.__dict__, "hflip": True}), seed=0)[len(x):]
    mirrored = [np.array_equal(o, im[..., ::-1]) for o, im in zip(out, x, strict=True)]
    same = [np.array_equal(o, im) for o, im in zip(out, x, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert 5 < sum(mirrored) < 35


def test_crop_scale_zooms_in():
    x = images(n=20)
    out = augment(x, params(copies=1, crop_scale_min=0.5, rotate_degrees=0.0, translate=0.0), seed=0)
    # zooming in spreads the bright bar over more pixels on average
    assert (out[len(x):] > 50).sum() > (x > 50).sum()
