"""The promotion gate: is the new run better than the champion by more than the noise (and the
margin), measured the same way, in the metric's better direction?

The flow hands it the champion re-scored by the candidate's own instrument (:mod:`.rescore`),
so the protocols normally match; the check stays as the last line of defence.

1. **Same protocol.** Scores are compared only when every ``protocol.*`` key that describes the
   measurement (extractor and its weights, sample and reference counts, resize, bootstrap...) is
   the same for both runs. Otherwise the gate says which keys differ, in one line, and refuses:
   it never compares the numbers. Keys that describe the *model* (which generator, DRS, the
   number format it trained in) may differ: they are what is being compared.
2. **Larger than the noise.** A one-sided test at level ``alpha`` (0.05) of "the gain is not
   more than ``min_improvement``":
   - FID, with the generated features of both runs at hand: the paired bootstrap of
     :func:`dcgan.metrics.uncertainty.paired_fid` (one reference resample shared by both in
     each round, so the reference's noise cancels);
   - otherwise: each run's bootstrap standard error from reports/metrics.json (``<key>_se``),
     as two independent estimates: gain - margin > z(1 - alpha) * sqrt(se_old² + se_new²). The
     shared reference makes this conservative (it promotes less often than the paired test).
   A run without an uncertainty for the metric is not promoted: the gate cannot tell its gain
   from noise.
3. **Guardrails.** A winner is still not promoted when its copy rate is above its own floor, or
   its precision or recall below the champion's, by more than the noise (:func:`guardrails`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from dcgan.metrics import registry

ALPHA = 0.05
MODEL_KEYS = frozenset({"generator", "drs", "train_precision", "train_compile", "recon_method"})
"""protocol.* keys that describe the model rather than the measurement: they may differ (how
reconstruction inverts G follows from whether G trained an encoder)."""


@dataclass
class Comparison:
    metric: str
    direction: str
    baseline: float | None
    new: float | None
    improvement: float | None  # > 0: better, in the metric's own units
    min_improvement: float
    promote: bool
    reason: str
    test: str = ""
    """How the gain was tested (paired bootstrap, independent standard errors)."""
    low: float | None = None
    high: float | None = None
    """The gain's 95% interval (metric units, > 0: better)."""
    p_value: float | None = None
    mismatch: list[str] = field(default_factory=list)
    """protocol keys that differ (then nothing was compared)."""
    on_gain_samples: tuple[float, float] | None = None
    """(baseline, new) on the samples the gain was measured on (the paired test's, all of them),
    where those differ from reports/metrics.json's (its first ``protocol.n_samples``)."""


def is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def protocol_mismatch(diff: dict[str, dict[str, object]]) -> list[str]:
    """``protocol.key: old -> new`` for each measurement key that differs between the runs
    (one side missing counts as different)."""
    out = []
    for key, row in sorted(diff.items()):
        if not key.startswith("protocol.") or key.split(".", 1)[1] in MODEL_KEYS:
            continue
        if row.get("old") != row.get("new"):
            out.append(f"{key}: {row.get('old')!r} -> {row.get('new')!r}")
    return out


@dataclass(frozen=True)
class PairedGain:
    """A paired test's result, in the metric's better direction (gain > 0: better)."""

    gain: float
    low: float
    high: float
    p_value: float
    resamples: int
    n: int = 0
    """Generated images a side (0: not recorded)."""
    shared_latents: bool = False
    """Both sides drawn from the same latents, resampled jointly."""
    old: float | None = None
    new: float | None = None
    """The champion's and the candidate's FID on those samples (gain = old - new)."""


def _share_above(a: float, b: float, n: float, alpha: float) -> tuple[bool, float]:
    """Is the share ``a`` above the share ``b`` (both of ``n`` images) by more than the noise
    (one-sided two-proportion z-test at level ``alpha``)? And its z."""
    pooled = (a + b) / 2
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * 2 / n)
    z = (a - b) / se
    # imported where used: scipy.stats costs 0.6 s in every process that imports the flow's API
    from scipy.stats import norm

    return z > norm.ppf(1 - alpha), z


def guardrails(diff: dict[str, dict[str, object]], alpha: float = ALPHA) -> list[str]:
    """What stops a candidate that wins on the gate's metric, by more than the noise: a copy rate
    above its own floor (it memorises training images, which FID rewards), or a precision or
    recall below the champion's. Shares of n images (``protocol.n_samples``,
    ``protocol.pr_images``), tested one-sided at level ``alpha``; a key either run lacks is not
    checked."""
    def new(key: str) -> object:
        return diff.get(key, {}).get("new")

    out = []
    rate, floor, n = new("copy_rate"), new("copy_rate_floor"), new("protocol.n_samples")
    if is_number(rate) and is_number(floor) and is_number(n) and n > 0:
        above, z = _share_above(float(rate), float(floor), float(n), alpha)
        if above:
            out.append(f"copy rate {rate:.3g} is above its floor {floor:.3g} by more than the noise (z = {z:.2f}): "
                       "the candidate reproduces training images")
    n_pr = new("protocol.pr_images")
    for key in ("precision", "recall"):
        old, now = diff.get(key, {}).get("old"), new(key)
        if is_number(old) and is_number(now) and is_number(n_pr) and n_pr > 0:
            fell, z = _share_above(float(old), float(now), float(n_pr), alpha)
            if fell:
                out.append(f"{key} fell from {old:.3g} to {now:.3g}, more than the noise (z = {z:.2f})")
    return out


def decide(diff: dict[str, dict[str, object]], metric: str, min_improvement: float,
           paired: PairedGain | None = None, alpha: float = ALPHA, champion: bool = True) -> Comparison:
    """Promote when ``metric`` is better than the baseline's by more than ``min_improvement``,
    beyond its noise (one-sided, level ``alpha``), under one protocol.

    ``champion``: whether a promoted model exists (a version in the GTO stage). Only without
    one is the new run promoted unmeasured against anything (the first model). With one, the
    protocols are checked first, and a baseline without a finite value of the metric is not
    compared (nothing promotes on a score the champion lacks). A missing or non-finite new
    value never promotes. ``paired``: the paired test of this metric (the flow's FID test);
    without it the runs' standard errors (``<metric>_se``) decide.
    """
    direction = registry.direction(metric)
    row = diff.get(metric, {})
    old, new = row.get("old"), row.get("new")

    def result(promote: bool, reason: str, improvement: float | None = None, **kw) -> Comparison:
        return Comparison(metric, direction, old if is_number(old) else None,
                          new if is_number(new) else None, improvement, min_improvement, promote, reason, **kw)

    if not is_number(new) or not math.isfinite(float(new)):
        return result(False, f"the new run has no finite {metric} ({new!r})")
    if not champion:
        return _guarded(result(True, "no baseline: no model has been promoted yet, so this first one is, "
                                     "checked only against its own floors (copy rate)"), diff, alpha)
    mismatch = protocol_mismatch(diff)
    if mismatch:
        return result(False, f"not compared: the runs were measured differently ({'; '.join(mismatch)}); "
                             "rerun the baseline's evaluate stage under the new protocol (dvc repro)",
                      mismatch=mismatch)
    if not is_number(old) or not math.isfinite(float(old)):
        return result(False, f"not compared: the promoted model has no finite {metric} ({old!r}); "
                             f"evaluate it with {metric} first (evaluate.metrics, dvc repro)")
    if paired is not None:
        return _by_paired(result, diff, f"{metric} {old:.4g} -> {new:.4g} ({direction} is better)", metric,
                          paired, min_improvement, alpha)
    improvement = (old - new) if direction == "lower" else (new - old)
    head = f"{metric} {old:.4g} -> {new:.4g} ({direction} is better): gain {improvement:+.4g}"
    return _by_se(result, diff, head, metric, improvement, min_improvement, alpha)


def _by_paired(result: Callable[..., Comparison], diff: dict[str, dict[str, object]], head: str, metric: str,
               paired: PairedGain, min_improvement: float, alpha: float) -> Comparison:
    """:func:`decide` by the paired test of ``metric`` (``result`` makes the Comparison)."""
    on = (f", {paired.n} samples a side" if paired.n else "") + (", the same latents" if paired.shared_latents else "")
    kw = {"test": f"paired bootstrap, {paired.resamples} resamples{on}", "low": paired.low, "high": paired.high,
          "p_value": paired.p_value,
          "on_gain_samples": (paired.old, paired.new) if paired.old is not None and paired.new is not None
          else None}
    both = f"{metric} {paired.old:.4g} -> {paired.new:.4g}, " if paired.old is not None and paired.new is not None else ""
    text = (f"{head}; on all {paired.n or 'the'} samples: {both}gain {paired.gain:+.4g} (95% CI {paired.low:+.3g} to "
            f"{paired.high:+.3g}, paired bootstrap p = {paired.p_value:.3g}{on})")
    if paired.p_value < alpha:
        return _guarded(result(True, f"{text}: more than {min_improvement:g} beyond the noise (p < {alpha:g})",
                               paired.gain, **kw), diff, alpha)
    return result(False, f"{text}: not shown to be more than {min_improvement:g} (needs p < {alpha:g})",
                  paired.gain, **kw)


def _by_se(result: Callable[..., Comparison], diff: dict[str, dict[str, object]], head: str, metric: str,
           improvement: float, min_improvement: float, alpha: float) -> Comparison:
    """:func:`decide` by the two runs' standard errors (``<metric>_se``)."""
    se_old, se_new = diff.get(f"{metric}_se", {}).get("old"), diff.get(f"{metric}_se", {}).get("new")
    if not (is_number(se_old) and is_number(se_new) and math.isfinite(se_old) and math.isfinite(se_new)):
        return result(False, f"{head}: no uncertainty ({metric}_se) for both runs, so the gain cannot be told "
                             "from noise; rerun evaluate with evaluate.bootstrap > 0", improvement)
    se = math.hypot(float(se_old), float(se_new))
    from scipy.stats import norm

    z = norm.ppf(1 - alpha)
    p = float(norm.sf((improvement - min_improvement) / se)) if se > 0 else float(improvement <= min_improvement)
    kw = {"test": "independent standard errors", "low": improvement - 1.96 * se, "high": improvement + 1.96 * se,
          "p_value": p}
    text = f"{head} ± {1.96 * se:.3g} (95%; standard errors {se_old:.3g}, {se_new:.3g}), p = {p:.3g}"
    if improvement - min_improvement > z * se:
        return _guarded(result(True, f"{text}: more than {min_improvement:g} beyond the noise (p < {alpha:g})",
                               improvement, **kw), diff, alpha)
    return result(False, f"{text}: not shown to be more than {min_improvement:g} (needs p < {alpha:g})",
                  improvement, **kw)


def not_compared(metric: str, reason: str) -> Comparison:
    """No comparison was possible (the champion could not be scored by the candidate's
    instrument): not promoted, and ``reason`` says why."""
    return Comparison(metric, registry.direction(metric), None, None, None, 0.0, False, f"not compared: {reason}")


def _guarded(c: Comparison, diff: dict[str, dict[str, object]], alpha: float) -> Comparison:
    """A winning comparison, unless a :func:`guardrails` check stops it (named in the reason)."""
    stops = guardrails(diff, alpha)
    if not stops:
        return c
    return dataclasses.replace(c, promote=False, reason=f"{c.reason}; but not promoted: " + "; ".join(stops))
