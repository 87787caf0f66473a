"""The promotion gate: does the new run beat the workspace's model on the chosen metric by more
than the margin, in the metric's better direction?"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dcgan.metrics import registry


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


def is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def decide(diff: dict[str, dict[str, object]], metric: str, min_improvement: float) -> Comparison:
    """Promote when ``metric`` improves on the baseline by more than ``min_improvement``.

    Improvement is measured in the metric's units in its better direction (FID 3.1 -> 2.9 is
    +0.2). A missing baseline (first run) promotes; a missing or non-finite new value never does.
    """
    direction = registry.direction(metric)
    row = diff.get(metric, {})
    old, new = row.get("old"), row.get("new")
    def result(promote: bool, reason: str, improvement: float | None = None) -> Comparison:
        return Comparison(metric, direction, old if is_number(old) else None,
                          new if is_number(new) else None, improvement, min_improvement, promote, reason)
    if not is_number(new) or not math.isfinite(float(new)):
        return result(False, f"the new run has no finite {metric} ({new!r})")
    if not is_number(old) or not math.isfinite(float(old)):
        return result(True, f"no baseline {metric} in the workspace: the first model is promoted")
    improvement = (old - new) if direction == "lower" else (new - old)
    if improvement > min_improvement:
        return result(True, f"{metric} {old:.4g} -> {new:.4g} ({direction} is better): improved by "
                            f"{improvement:.4g} > {min_improvement:g}", improvement)
    return result(False, f"{metric} {old:.4g} -> {new:.4g} ({direction} is better): improvement "
                         f"{improvement:.4g} is not more than {min_improvement:g}", improvement)
