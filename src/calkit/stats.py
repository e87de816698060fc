"""Paired statistics over seeds: the numbers a comparison publishes.

Each seed gives one paired ratio (a policy against the baseline run with the same seed, so the
same initial set and the same starting model); a comparison reports the mean of those ratios and
a t-interval over seeds, never a ratio of means.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy import stats as _scipy_stats

#: A policy is at parity with the baseline at a budget when its mean relative accuracy is at
#: least PARITY_MEAN and the lower end of the 95 % interval at least PARITY_LOWER.
PARITY_MEAN = 0.995
PARITY_LOWER = 0.99


def ci95(values: Sequence[float]) -> list[float] | None:
    """Two-sided 95 % t-interval of the mean; None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    mean = statistics.fmean(values)
    half = float(_scipy_stats.t.ppf(0.975, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return [mean - half, mean + half]


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, infinite for a zero denominator (a free policy)."""
    return numerator / denominator if denominator else math.inf


def parity(mean: float, interval: list[float] | None) -> bool | None:
    """At parity by the published rule; None when one seed cannot give an interval."""
    if interval is None:
        return None
    return mean >= PARITY_MEAN and interval[0] >= PARITY_LOWER


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(statistics.fmean(values)), float(statistics.stdev(values)) if len(values) > 1 else 0.0
