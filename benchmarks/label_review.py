"""Label-error review on noisy labels: how many of the wrong labels the review queue finds.

    python benchmarks/label_review.py --out runs/label-review

For each dataset (the CPU suite's digits and Fashion-MNIST entries: same pool, model and round
plan) and seed, a `cal` run is made whose simulated annotators answer wrongly with probability
``--noise`` (uniform over the other classes). After the last round, `Run.review_labels` ranks the
agreed labels (confident learning; ``--source`` says on whose predictions);
k is the number of wrong labels the run holds, and the table gives the precision and recall of
the queue's top k (precision = recall at that k; chance is the noise rate), for the rounds the
selecting models chose (out-of-sample) and the random initial round (the newest model's
in-sample predictions) apart, and how many labels confident learning flags in all.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import numpy as np

from calkit.bench import CPU_SUITE
from calkit.cli import parse_seeds
from calkit.compare import budget_counts, default_round_size, round_plan, run_config, run_one
from calkit.loop import dataset_for
from calkit.noise import NoiseModel
from calkit.run import Run
from calkit.stats import ci95

ENTRIES = ("digits-mlp", "fashion-mnist-mlp")


@dataclasses.dataclass(frozen=True)
class Reviewed:
    """One finished noisy run and its review queue."""

    entry: str
    seed: int
    path: Path
    dataset: object  #: calkit.data.Dataset
    suspects: list  #: Run.review_labels's queue, most suspect first
    truth: np.ndarray  #: each suspect's true class
    wrong: np.ndarray  #: whether each suspect's agreed label is wrong
    test_accuracy: float  #: the run's own final model

    @property
    def k(self) -> int:
        return int(self.wrong.sum())


def reviewed_run(entry_name: str, seed: int, noise: float, out: Path, source: str = "crossval") -> Reviewed:
    """The entry's noisy `cal` run for ``seed`` (made, or reused when finished) and its review."""
    entry = next(e for e in CPU_SUITE if e.name == entry_name)
    dataset = dataset_for(entry.base)
    counts = budget_counts(entry.budgets, dataset.pool_size)
    sizes = round_plan(counts, entry.max_round_size or default_round_size(dataset.pool_size))
    cfg = dataclasses.replace(run_config(entry.spec((seed,)), "paper", "cal", seed, sizes), label_noise=noise)
    path = out / entry_name / f"cal-s{seed}"
    run_one(path, cfg, dataset)
    with Run.open(path, dataset=dataset) as run:
        suspects = run.review_labels(source)
        accuracy = run.metrics()[-1]["test_accuracy"]
    positions = dataset.positions(np.array([s.item_id for s in suspects]))
    truth = dataset.y_train[positions]
    answered, wrong = NoiseModel("uniform", noise).answers(truth, positions, dataset.pool_size, dataset.n_classes, seed)
    if not np.array_equal(answered, [s.given for s in suspects]):
        raise AssertionError(f"{path}: the agreed labels are not the simulated annotators' answers")
    return Reviewed(entry_name, seed, path, dataset, suspects, truth, wrong, accuracy)


def measure(entry_name: str, seed: int, noise: float, out: Path, source: str = "selection") -> dict:
    r = reviewed_run(entry_name, seed, noise, out, source)
    k, wrong = r.k, r.wrong
    top = wrong[:k]
    rounds = np.array([s.round for s in r.suspects])
    later, initial = rounds[:k] > 0, rounds[:k] == 0
    return {"entry": entry_name, "seed": seed, "labels": len(r.suspects), "wrong": k, "precision": float(top.mean()),
            "flagged": sum(s.confident for s in r.suspects), "test_accuracy": r.test_accuracy,
            "recall_later": float(top[later].sum() / max(1, wrong[rounds > 0].sum())),
            "recall_initial": float(top[initial].sum() / max(1, wrong[rounds == 0].sum()))}


def review_arguments(description: str) -> argparse.ArgumentParser:
    """The options both label-review benchmarks take (this one and label_fix.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path("runs/label-review"))
    parser.add_argument("--seeds", type=parse_seeds, default=(100, 101, 102))
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--entry", action="append", help=f"[{', '.join(ENTRIES)}]")
    parser.add_argument("--source", default="crossval", help="whose predictions: crossval, selection, ensemble or "
                        "newest [crossval]")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = review_arguments(__doc__.split("\n\n")[0]).parse_args(argv)
    print(f"noise {args.noise:g} (uniform), seeds {list(args.seeds)}; k = the wrong labels a run holds\n")
    print("| entry | labels | wrong (k) | precision = recall at k [95 % interval] | recall, chosen rounds | "
          "recall, initial round | flagged by confident learning | test accuracy |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for name in args.entry or ENTRIES:
        rows = [measure(name, seed, args.noise, args.out, args.source) for seed in args.seeds]
        for r in rows:
            print(r, file=sys.stderr)
        low, high = ci95([r["precision"] for r in rows]) or (float("nan"),) * 2
        mean = lambda key: statistics.fmean(r[key] for r in rows)  # noqa: E731
        print(f"| {name} | {mean('labels'):.0f} | {mean('wrong'):.1f} | {mean('precision'):.3f} [{low:.3f}, {high:.3f}] | "
              f"{mean('recall_later'):.3f} | {mean('recall_initial'):.3f} | {mean('flagged'):.0f} | "
              f"{mean('test_accuracy'):.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
