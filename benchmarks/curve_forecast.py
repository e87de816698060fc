"""How well the learning-curve fit forecasts: fit the first half of a run's rounds, predict the last.

    python benchmarks/curve_forecast.py --bench runs/bench

Reads the runs of a finished `calkit bench cpu --out BENCH` (no training): for every entry,
policy (`cal` and the `reset-tuned` baseline) and seed, the power law of calkit.learning_curve
is fitted to the validation accuracy of the first half of the rounds (those up to the middle
budget), and its forecast for the last budget is compared with the accuracy the run reached
there. Reported per entry: the mean absolute and mean signed error of the forecast in accuracy
points, how often the 90 % bootstrap interval held the outcome, and, for scale, the mean absolute
error of the flat forecast (no gain after the last fitted round).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from calkit.learning_curve import curve_points, fit_learning_curve
from calkit.report import read_metrics

POLICIES = ("cal", "reset-tuned")


def forecasts(entry: Path) -> list[dict]:
    rows = []
    for run in sorted((entry / "paper").glob("*-s*")):
        policy = run.name.rsplit("-s", 1)[0]
        if policy not in POLICIES:
            continue
        split, labels, accuracy = curve_points(read_metrics(run))
        half = (len(labels) + 1) // 2
        fit = fit_learning_curve(labels[:half], accuracy[:half])
        if split != "val" or fit is None:
            continue
        low, high = fit.accuracy_interval(labels[-1]) or (float("nan"), float("nan"))
        predicted = fit.accuracy_at(labels[-1])
        rows.append({"policy": policy, "seed": run.name.rsplit("-s", 1)[1], "from": labels[half - 1],
                     "to": labels[-1], "predicted": predicted, "actual": accuracy[-1],
                     "error": 100 * (predicted - accuracy[-1]), "covered": low <= accuracy[-1] <= high,
                     "flat_error": 100 * (accuracy[half - 1] - accuracy[-1])})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=Path("runs/bench"))
    args = parser.parse_args(argv)
    print("| entry | runs | fitted on labels up to | forecast for | mean abs error (points) | mean signed error "
          "| 90 % interval held the outcome | flat forecast: mean abs error |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    everything = []
    for entry in sorted(p for p in args.bench.iterdir() if (p / "paper").is_dir()):
        rows = forecasts(entry)
        if not rows:
            continue
        everything += rows
        print(f"| {entry.name} | {len(rows)} | {rows[0]['from']:,} | {rows[0]['to']:,} | "
              f"{statistics.fmean(abs(r['error']) for r in rows):.2f} | {statistics.fmean(r['error'] for r in rows):+.2f} | "
              f"{sum(r['covered'] for r in rows)}/{len(rows)} | {statistics.fmean(abs(r['flat_error']) for r in rows):.2f} |")
    if everything:
        print(f"| all | {len(everything)} | | | {statistics.fmean(abs(r['error']) for r in everything):.2f} | "
              f"{statistics.fmean(r['error'] for r in everything):+.2f} | "
              f"{sum(r['covered'] for r in everything)}/{len(everything)} | "
              f"{statistics.fmean(abs(r['flat_error']) for r in everything):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
