"""Is HEAD better, worse, or within the noise of BASE, metric by metric, under one protocol?

The rule is the promotion gate's (:mod:`dcgan.app.retrain.gate`), applied in both directions: a
change is *better* when its gain beats ``margin`` in a one-sided test at level ``alpha``, *worse*
when its loss does, and *within noise* otherwise. Runs measured differently (any ``protocol.*``
key that describes the measurement) are *not comparable*, and nothing is tested.

The noise of one run is its sampling noise: for FID, the paired bootstrap on both runs' generated
features where both are at hand and reproduce their metrics.json; otherwise each run's bootstrap
standard error (``<key>_se``). Two runs of an unchanged recipe also differ by their training
(another seed, another CPU's rounding): ``retrain_sd`` (the spread of the metric over unchanged
retrains, measured by benchmarks/gate_noise.py) adds that noise to both sides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dcgan.app.retrain.gate import ALPHA, PairedGain, is_number, protocol_mismatch
from dcgan.metrics import registry

BETTER, WORSE, NOISE, NOT_COMPARABLE, NO_CHANGE = "better", "worse", "within noise", "not comparable", "no change"
EXIT = {BETTER: 0, NOISE: 0, NO_CHANGE: 0, WORSE: 1, NOT_COMPARABLE: 2}
"""The exit code of ``dcgan review`` for the gated metric's verdict (3: bad input)."""


@dataclass(frozen=True)
class Verdict:
    metric: str
    word: str
    old: float | None = None
    new: float | None = None
    gain: float | None = None
    """new - old in the metric's better direction (> 0: better)."""
    low: float | None = None
    high: float | None = None
    """The gain's 95% interval."""
    p_better: float | None = None
    p_worse: float | None = None
    test: str = ""
    reason: str = ""

    @property
    def direction(self) -> str:
        return registry.direction(self.metric)


@dataclass(frozen=True)
class Review:
    metric: str
    """The gated metric (the flow's default: fid): it decides the exit code."""
    verdicts: tuple[Verdict, ...]
    """The gated metric first, then each other ranked metric with a standard error."""
    mismatch: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def gated(self) -> Verdict:
        return self.verdicts[0]

    def exit_code(self, fail_on_worse: bool = True) -> int:
        code = EXIT[self.gated.word]
        return 0 if code == 1 and not fail_on_worse else code


def _noise_test(gain: float, se: float, margin: float) -> tuple[float, float]:
    """One-sided p-values of "better" and of "worse" by more than ``margin``, for a ``gain``
    that is normal with standard error ``se``."""
    from scipy.stats import norm

    if se <= 0:
        return float(gain <= margin), float(-gain <= margin)
    return float(norm.sf((gain - margin) / se)), float(norm.sf((-gain - margin) / se))


def judge_metric(diff: dict, metric: str, margin: float = 0.0, alpha: float = ALPHA,
                 paired: tuple[PairedGain, PairedGain | None] | None = None, retrain_sd: float = 0.0) -> Verdict:
    """One metric's verdict. ``paired``: the paired bootstrap of the FID gain both ways
    ((better: gain of HEAD over BASE), (worse: gain of BASE over HEAD, or None where "better"
    was shown and "worse" not tested)), each against ``margin``."""
    row = diff.get(metric, {})
    old, new = row.get("old"), row.get("new")
    if not (is_number(old) and is_number(new) and math.isfinite(old) and math.isfinite(new)):
        which = " and ".join(side for side, v in (("BASE", old), ("HEAD", new))
                             if not (is_number(v) and math.isfinite(v)))
        return Verdict(metric, NOT_COMPARABLE, old if is_number(old) else None, new if is_number(new) else None,
                       reason=f"{which} has no finite {metric}")
    sign = -1.0 if registry.direction(metric) == "lower" else 1.0
    gain = sign * (new - old)
    base = {"metric": metric, "old": float(old), "new": float(new), "gain": gain}
    se_old, se_new = diff.get(f"{metric}_se", {}).get("old"), diff.get(f"{metric}_se", {}).get("new")
    if new == old and se_old == se_new:
        return Verdict(**base, word=NO_CHANGE, reason=f"{metric} {old:.4g} on both")
    extra = 2 * retrain_sd ** 2
    retrain = f" and the retrain noise (sd {retrain_sd:.3g} a run)" if retrain_sd > 0 else ""
    if paired is not None:
        up, down = paired
        gain = up.gain
        se_paired = (up.high - up.low) / (2 * 1.959964)
        if extra == 0:
            p_better, p_worse = up.p_value, (down.p_value if down is not None else None)
            low, high = up.low, up.high
        else:
            se = math.sqrt(se_paired ** 2 + extra)
            p_better, p_worse = _noise_test(gain, se, margin)
            low, high = gain - 1.959964 * se, gain + 1.959964 * se
        test = f"paired bootstrap on both runs' features ({up.n} a side, {up.resamples} resamples){retrain}"
    else:
        if not (is_number(se_old) and is_number(se_new) and math.isfinite(se_old) and math.isfinite(se_new)):
            return Verdict(**base, word=NOT_COMPARABLE,
                           reason=f"no standard error ({metric}_se) on both sides: the change cannot be told from "
                                  "noise (evaluate.bootstrap > 0 writes it)")
        se = math.sqrt(se_old ** 2 + se_new ** 2 + extra)
        p_better, p_worse = _noise_test(gain, se, margin)
        low, high = gain - 1.959964 * se, gain + 1.959964 * se
        test = f"standard errors {se_old:.3g} and {se_new:.3g}{retrain}"
    word = BETTER if p_better < alpha else WORSE if p_worse is not None and p_worse < alpha else NOISE
    beyond = f"beyond the noise and the margin {margin:g}" if margin else "beyond the noise"
    how = {BETTER: f"better {beyond} (p = {p_better:.2g})", WORSE: f"worse {beyond} (p = {p_worse or 0:.2g})",
           NOISE: f"within the noise (p better {p_better:.2g}, p worse {p_worse or 0:.2g}; needs < {alpha:g})"}[word]
    reason = (f"{metric} {old:.4g} -> {new:.4g} ({registry.direction(metric)} is better): gain {gain:+.3g} "
              f"(95% CI {low:+.3g} to {high:+.3g}), {how}")
    return Verdict(**{**base, "gain": gain}, word=word, low=low, high=high, p_better=p_better, p_worse=p_worse,
                   test=test, reason=reason)


def judge(diff: dict, metric: str = "fid", alpha: float = ALPHA, margins: dict[str, float] | None = None,
          paired: tuple[PairedGain, PairedGain | None] | None = None, retrain_sd: dict[str, float] | None = None,
          notes: tuple[str, ...] = ()) -> Review:
    """The review of ``diff`` (``dvc metrics diff`` rows: ``{key: {"old", "new", "diff"}}``):
    ``metric`` first, then every other metric in :func:`registry.gate_keys`. ``paired`` is used for
    FID only."""
    margins, retrain_sd = margins or {}, retrain_sd or {}
    keys = [metric, *(k for k in registry.gate_keys() if k != metric)]
    mismatch = tuple(protocol_mismatch(diff))
    if mismatch:
        why = "measured differently: " + "; ".join(mismatch)
        return Review(metric, tuple(Verdict(k, NOT_COMPARABLE, reason=why) for k in keys), mismatch, notes)
    return Review(metric, tuple(judge_metric(diff, k, margins.get(k, 0.0), alpha, paired if k == "fid" else None,
                                             retrain_sd.get(k, 0.0)) for k in keys), (), notes)
