"""Statistics over seeds for the benchmarks: mean with a 95% confidence interval (Student t)
and Welch's unequal-variance t-test between two groups of runs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Spread:
    mean: float
    half_width: float
    """Half-width of the 95% confidence interval of the mean (t with n - 1 degrees of freedom);
    nan for a single value, which has no interval."""
    n: int

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:.3g} (1 seed)"
        return f"{self.mean:.3g} ± {self.half_width:.2g}"


def spread(values: list[float], level: float = 0.95) -> Spread:
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n < 2:
        return Spread(mean, math.nan, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Spread(mean, float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n), n)


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of Welch's t-test that a and b have the same mean (nan when either has
    fewer than 2 values, or both have no spread at all)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if max(a) == min(a) and max(b) == min(b):
        return 1.0 if a[0] == b[0] else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def verdict(p: float, alpha: float = 0.05) -> str:
    """What a Welch p-value says, in words for a table."""
    if math.isnan(p):
        return "n/a (needs 2+ seeds on both sides)"
    return f"{'differs' if p < alpha else 'within noise'} (p = {p:.2g})"


@dataclass(frozen=True)
class Paired:
    """A row against a baseline on the same seeds: the mean of the per-seed differences (row −
    baseline) with its 95% interval, the paired t-test's p-value, and the smallest true mean
    difference the test would detect with 80% power at alpha 0.05 (two-sided), given the spread
    of the differences seen."""

    n: int
    mean: float
    half_width: float
    p: float
    detectable: float

    def verdict(self, lower_is_better: bool = True, alpha: float = 0.05) -> str:
        """'better'/'worse' when the test separates the two; otherwise 'cannot tell', with the
        smallest difference this comparison could have seen (a tie here is not a verdict)."""
        if self.n < 2 or math.isnan(self.p):
            return "cannot tell (fewer than 2 paired seeds)"
        if self.p < alpha:
            better = (self.mean < 0) == lower_is_better
            return f"{'better' if better else 'worse'} (p = {self.p:.2g})"
        return f"cannot tell (p = {self.p:.2g}; detectable ≥ {self.detectable:.2g})"


def paired(a: list[float], b: list[float], level: float = 0.95, power: float = 0.8) -> Paired:
    """Paired comparison of a and b (same seeds, same order): a − b."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    if n < 2:
        return Paired(n, d[0] if d else math.nan, math.nan, math.nan, math.nan)
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    t_a = float(stats.t.ppf(0.5 + level / 2, n - 1))
    t_b = float(stats.t.ppf(power, n - 1))
    if sd == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        p = float(stats.ttest_rel(a, b).pvalue)
    return Paired(n, mean, t_a * sd / math.sqrt(n), p, (t_a + t_b) * sd / math.sqrt(n))
