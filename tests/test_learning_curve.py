"""The learning-curve fit: err(n) = a n^-b + c, what more labels are worth, and when to stop."""

from __future__ import annotations

import numpy as np
import pytest

from calkit.learning_curve import curve_points, fit_learning_curve

LABELS = [100, 200, 300, 400, 600, 800, 1000]


def _curve(a=3.0, b=0.5, c=0.05, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    n = np.array(LABELS, dtype=float)
    return (1 - (a * n ** -b + c) + rng.normal(0, noise, len(n))).tolist()


def test_a_clean_power_law_is_recovered():
    fit = fit_learning_curve(LABELS, _curve())
    assert fit.b == pytest.approx(0.5, abs=0.02) and fit.c == pytest.approx(0.05, abs=0.005)
    truth = 100 * ((3.0 * 1000 ** -0.5) - (3.0 * 2000 ** -0.5))
    assert fit.worth(1000) == pytest.approx(truth, rel=0.05)


def test_the_interval_widens_with_noise_and_holds_the_truth():
    quiet, noisy = fit_learning_curve(LABELS, _curve(noise=0.001)), fit_learning_curve(LABELS, _curve(noise=0.01))
    width = lambda f: np.subtract(*f.worth_interval(1000)[::-1])  # noqa: E731
    assert width(noisy) > width(quiet)
    low, high = quiet.accuracy_interval(2000)
    assert low <= 1 - (3.0 * 2000 ** -0.5 + 0.05) <= high


def test_too_few_points_or_missing_values_give_no_fit():
    assert fit_learning_curve([100, 200, 300], [0.5, 0.6, 0.7]) is None
    assert fit_learning_curve([100, 200, 300, 400], [0.5, None, 0.7, float("nan")]) is None


def test_a_flat_curve_is_worth_nothing_and_says_stop():
    fit = fit_learning_curve(LABELS, [0.9] * len(LABELS))
    assert abs(fit.worth(1000)) < 1e-6
    assert "consider stopping" in fit.describe(1000, stop_below=0.5)
    steep = fit_learning_curve(LABELS, _curve(a=20.0, b=0.6, c=0.0))
    assert "keep labeling" in steep.describe(1000, stop_below=0.5)


def test_curve_points_read_validation_first():
    records = [{"labeled": 10, "val_accuracy": 0.5, "test_accuracy": 0.4},
               {"labeled": 20, "val_accuracy": 0.6, "test_accuracy": None}]
    assert curve_points(records) == ("val", [10, 20], [0.5, 0.6])
    assert curve_points([{"labeled": 10, "test_accuracy": 0.4}]) == ("test", [10], [0.4])


def test_the_report_line_reads_validation_and_prices_the_next_labels():
    from calkit.report import forecast_line

    records = [{"labeled": n, "val_accuracy": a, "test_accuracy": a - 0.01} for n, a in zip(LABELS, _curve())]
    line = forecast_line(records, extra=500, stop_below=0.1)
    assert line.startswith("learning curve (validation accuracy): fit err(n) =")
    assert "the next 500 labels are worth about" in line and "keep labeling" in line
