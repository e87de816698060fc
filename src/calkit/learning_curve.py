"""Is more labeling worth it? A power law fitted to the learning curve so far.

The error after n labels is modelled as err(n) = a n^-b + c (a > 0, b > 0, c >= 0: the
irreducible error); the usual form for learning curves (Hestness et al., 2017; Viering and
Loog, 2022, review where it fails). From the fit: what the next ``extra`` labels are worth in
accuracy points, err(n) - err(n + extra), with a 90 % interval from a residual bootstrap (the
fit again on the fitted curve plus resampled residuals). A forecast is only as good as the
curve is smooth: active learning's curves are noisy in the first rounds, and the interval says
so. ``benchmarks/curve_forecast.py`` measures how far these forecasts land from what the runs
then reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Fewer trained rounds than this give no fit (three parameters, and at least one point to spare).
MIN_POINTS = 4
BOOTSTRAP = 200


def power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a * np.power(n, -b) + c


@dataclass(frozen=True)
class CurveFit:
    """err(n) = a n^-b + c fitted to (labels, accuracy) points, with bootstrap refits for intervals."""

    a: float
    b: float
    c: float
    labels: tuple[int, ...]
    accuracy: tuple[float, ...]
    refits: tuple[tuple[float, float, float], ...] = ()
    residuals: tuple[float, ...] = ()

    def accuracy_at(self, n: float) -> float:
        return 1.0 - float(power_law(np.asarray(float(n)), self.a, self.b, self.c))

    def accuracy_interval(self, n: float, level: float = 0.9) -> tuple[float, float] | None:
        """Where a round's measured accuracy after ``n`` labels should land: the refitted curves
        plus a resampled residual (a measurement scatters around the curve as the fitted ones did)."""
        rng = np.random.default_rng(1)
        noise = rng.choice(np.asarray(self.residuals or (0.0,)), size=len(self.refits))
        values = [1.0 - float(power_law(np.asarray(float(n)), *p)) - e for p, e in zip(self.refits, noise)]
        return _interval(values, level)

    def worth(self, extra: int, at: int | None = None) -> float:
        """Accuracy points (percentage points) that ``extra`` more labels after ``at`` (the last
        point) add, by the fit."""
        n = at or self.labels[-1]
        return 100.0 * (self.accuracy_at(n + extra) - self.accuracy_at(n))

    def worth_interval(self, extra: int, at: int | None = None, level: float = 0.9) -> tuple[float, float] | None:
        n = at or self.labels[-1]
        values = [100.0 * float(power_law(np.asarray(float(n)), *p) - power_law(np.asarray(float(n + extra)), *p))
                  for p in self.refits]
        return _interval(values, level)

    def describe(self, extra: int = 1000, stop_below: float | None = None) -> str:
        """One line for a report: the fit, what ``extra`` labels are worth, and whether to stop."""
        gain = self.worth(extra)
        span = self.worth_interval(extra)
        shown = f"{gain:.2f} points" + ("" if span is None else f" (90 % interval {span[0]:.2f} to {span[1]:.2f})")
        line = (f"fit err(n) = {self.a:.3g} n^-{self.b:.3g} + {self.c:.3g} on {len(self.labels)} rounds; the next "
                f"{extra:,} labels are worth about {shown}; accuracy levels off near {1 - self.c:.4f}")
        if stop_below is not None:
            upper = gain if span is None else span[1]
            line += (f". Below {stop_below:g} points even at the interval's top: consider stopping" if upper < stop_below
                     else f". Still worth more than {stop_below:g} points: keep labeling" if gain >= stop_below
                     else f". Probably under {stop_below:g} points, but the interval reaches {upper:.2f}: label a "
                          "round more before deciding")
        return line


def fit_learning_curve(labels: Sequence[int], accuracy: Sequence[float], bootstrap: int = BOOTSTRAP,
                       seed: int = 0) -> CurveFit | None:
    """The power-law fit of accuracy against labels, or None with too few points (MIN_POINTS)
    or a fit that does not converge."""
    pairs = sorted((int(n), float(acc)) for n, acc in zip(labels, accuracy)
                   if acc is not None and n and n > 0 and math.isfinite(float(acc)))
    if len(pairs) < MIN_POINTS:
        return None
    n = np.array([p[0] for p in pairs], dtype=float)
    err = 1.0 - np.array([p[1] for p in pairs])
    best = _fit(n, err)
    if best is None:
        return None
    fitted = power_law(n, *best)
    residuals = err - fitted
    rng = np.random.default_rng(seed)
    refits = []
    for _ in range(bootstrap):
        again = _fit(n, fitted + rng.choice(residuals, size=len(residuals), replace=True))
        if again is not None:
            refits.append(tuple(float(v) for v in again))
    return CurveFit(*(float(v) for v in best), tuple(int(v) for v in n), tuple(1.0 - err), tuple(refits),
                    tuple(float(r) for r in residuals))


#: The exponents tried: for a fixed b the model is linear in a and c, solved exactly, so the fit
#: is a search over b alone (fast enough to refit hundreds of times for an interval).
EXPONENTS = np.linspace(0.01, 3.0, 600)


def _fit(n: np.ndarray, err: np.ndarray) -> tuple[float, float, float] | None:
    """Least squares over a, b, c with a >= 0 and 0 <= c <= 1, b on the EXPONENTS grid."""
    x = np.power(n[None, :], -EXPONENTS[:, None])  # (B, N)
    xm, em = x.mean(axis=1), err.mean()
    var = ((x - xm[:, None]) ** 2).sum(axis=1)
    a = np.where(var > 0, ((x - xm[:, None]) * (err - em)).sum(axis=1) / np.where(var > 0, var, 1), 0.0)
    c = em - a * xm
    slope_only = c < 0  # the best line crosses below zero: c = 0, a through the origin
    a = np.where(slope_only, (x * err).sum(axis=1) / (x * x).sum(axis=1), a)
    c = np.where(slope_only, 0.0, c)
    flat = a < 0  # error grows with labels: no decay at all
    a, c = np.where(flat, 0.0, a), np.where(flat, em, c)
    c = np.clip(c, 0.0, 1.0)
    sse = ((a[:, None] * x + c[:, None] - err) ** 2).sum(axis=1)
    best = int(np.argmin(sse))
    params = (float(a[best]), float(EXPONENTS[best]), float(c[best]))
    return params if all(math.isfinite(v) for v in params) else None


def _interval(values: list[float], level: float) -> tuple[float, float] | None:
    if len(values) < 20:
        return None
    tail = (1.0 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def curve_points(records: Sequence[dict]) -> tuple[str, list[int], list[float]]:
    """The split a run's curve is read on (validation where it has one, else the held-out items
    people labeled: the test split stays for published numbers), with labels and accuracy per
    trained round."""
    for split in ("val", "holdout", "test"):
        key = f"{split}_accuracy"
        points = [(r["labeled"], r[key]) for r in records if r.get(key) is not None]
        if points:
            return split, [p[0] for p in points], [p[1] for p in points]
    return "none", [], []
