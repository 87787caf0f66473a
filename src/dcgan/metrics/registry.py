"""The metric catalogue: each metric's name, the keys it writes and which way is better.

Plain data with no imports, so that params validation (config), the report and the promotion
gate can name and rank metrics without loading (or depending on) the code that computes them.
The implementations are bound to these names in :mod:`dcgan.metrics.suite`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Key:
    """One number a metric writes to reports/metrics.json (its floor is ``<key>_floor``)."""

    key: str
    label: str
    better: Better | None
    """Which way is better; None for spreads (std) and the copy rate, which are not ranked."""
    resampled: bool = False
    """Whether the evaluate stage gives it a bootstrap standard error and 95% interval
    (``<key>_se``, ``<key>_ci_low``, ``<key>_ci_high``; :data:`UNCERTAIN`)."""


@dataclass(frozen=True)
class Metric:
    """A metric selectable in ``evaluate.metrics``."""

    name: str
    keys: tuple[Key, ...]


CATALOGUE: dict[str, Metric] = {m.name: m for m in (
    Metric("fid", (Key("fid", "FID", "lower", resampled=True),)),
    Metric("is", (Key("is_mean", "Inception Score (mean)", "higher", resampled=True),
                  Key("is_std", "Inception Score (std over splits)", None))),
    Metric("kid", (Key("kid_mean", "KID (mean)", "lower", resampled=True),
                   Key("kid_std", "KID (std over subsets)", None))),
    Metric("pr", (Key("precision", "Precision (k-NN)", "higher"),
                  Key("recall", "Recall (k-NN)", "higher"))),
    # not ranked: below its floor is no better (blurred samples sit far from every image); above it
    # means copying
    Metric("copies", (Key("copy_rate", "Copy rate (share nearer a training image than its neighbour; "
                                       "above the floor: copying)", None),)),
)}

UNCERTAIN: tuple[str, ...] = tuple(k.key for m in CATALOGUE.values() for k in m.keys if k.resampled)
"""Keys the evaluate stage gives a bootstrap standard error and 95% interval (``<key>_se``,
``<key>_ci_low``, ``<key>_ci_high``) when evaluate.bootstrap > 0 (those marked ``resampled``):
each has its estimator on a resample in :data:`dcgan.metrics.uncertainty.RESAMPLED` (checked at
import), and only these may gate a promotion (:func:`gate_keys`)."""

# written by the evaluate stage when evaluate.recon_images > 0 (not part of evaluate.metrics)
RECON_KEYS: tuple[Key, ...] = (
    Key("recon_mse", "Reconstruction MSE", "lower"),
    Key("recon_psnr", "Reconstruction PSNR (dB)", "higher"),
    Key("recon_ssim", "Reconstruction SSIM", "higher"),
)

ALL_KEYS: tuple[Key, ...] = (*(k for m in CATALOGUE.values() for k in m.keys), *RECON_KEYS)


def metric_names() -> tuple[str, ...]:
    """The names ``evaluate.metrics`` accepts."""
    return tuple(CATALOGUE)


def metric_of(key: str) -> str:
    """The metric (an ``evaluate.metrics`` name) that writes ``key``; KeyError for any other."""
    for m in CATALOGUE.values():
        if any(k.key == key for k in m.keys):
            return m.name
    raise KeyError(key)


def ranked_keys() -> tuple[str, ...]:
    """Keys with a better direction: what a promotion may be gated on."""
    return tuple(k.key for k in ALL_KEYS if k.better is not None)


def gate_keys() -> tuple[str, ...]:
    """Ranked keys with a bootstrap standard error (:data:`UNCERTAIN`): what the promotion gate
    can tell from noise, so the only ones it accepts."""
    return tuple(k for k in ranked_keys() if k in UNCERTAIN)


def direction(key: str) -> Better:
    """``lower`` or ``higher`` for a ranked key; KeyError for any other."""
    for k in ALL_KEYS:
        if k.key == key and k.better is not None:
            return k.better
    raise KeyError(key)


UNOFFICIAL_WEIGHTS = (
    "The Inception weights behind these numbers are not the published file (their sha256 does "
    "not start with 6726825d): FID, IS and KID here cannot be compared with published values, "
    "only with runs that used the same file."
)
"""Said wherever FID is shown for a run whose protocol has ``weights_official: 0``."""
