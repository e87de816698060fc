"""What correcting the review's top k is worth: test accuracy on noisy, corrected and clean labels.

    python benchmarks/label_fix.py --out runs/label-review --seeds 100-104

For each dataset and seed, the noisy `cal` run of benchmarks/label_review.py (made, or reused when
finished: the same ``--out``) and its review queue (``--source``, cross-validated by default); k
is the number of wrong labels the run holds, as there. Three fresh models are then trained on the
run's final labeled set, one per labeling:

- noisy: the agreed labels, as the run holds them;
- corrected: the same, with each of the queue's top k set to its true class (a lead checks those
  k items and fixes the wrong ones; the right ones stay);
- clean: every label true (the upper reference).

Each is trained the way the cross-validated review trains its fold models (calkit.label_review:
fresh weights from the run's model factory, the run's optimizer, the initial-round rule, plain
training), with the same seeds for all three: the same initial weights and the same batch order,
only the labels differ. The table gives the mean test accuracies and the paired per-seed
differences with 95 % t-intervals over seeds, and the compute (sample-gradients) of the review
and of each extra training.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
from pathlib import Path

import numpy as np

import calkit.train
from calkit.evaluate import evaluate
from calkit.loop import ActiveLoop
from calkit.policies import make_policy
from calkit.policies.base import RoundData
from calkit.rules import initial_rule_for
from calkit.seeding import numpy_rng, seed_torch
from calkit.stats import ci95
from calkit.train import ComputeMeter
from calkit.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_review import ENTRIES, review_arguments, reviewed_run

LABELINGS = ("noisy", "corrected", "clean")


def fresh_model(loop: ActiveLoop, ids: np.ndarray, labels: np.ndarray) -> dict:
    """Test accuracy of fresh weights trained on ``labels``, as calkit.label_review's
    cross_validated_probabilities trains each fold's model (seeded like its fold 0)."""
    cfg = loop.cfg
    loop.data.set_labels(ids, labels)
    seed_torch(cfg.seed, 0, "init")
    model = loop.trainer.model_factory().to(loop.data.device)
    optimizer = cfg.optimizer_config().build(model)
    rnd = RoundData(0, ids, np.array([], dtype=np.int64))
    rule = initial_rule_for(cfg).resolve(rnd, 1)
    meter = ComputeMeter()
    fit = Trainer(loop.data, meter, cfg.batch_size).fit(model, optimizer, make_policy("reset"), rnd, rule,
                                                         numpy_rng(cfg.seed, 0, "train"))
    scores = evaluate(model.eval(), loop.data, cfg.score_batch_size).scores
    return {"test_accuracy": scores["test_accuracy"], "epochs": fit.epochs, "sample_gradients": meter.sample_gradients}


@contextlib.contextmanager
def counted_training():
    """Sums the sample-gradients of every ComputeMeter made inside (the review's fold models
    meter into meters of their own, which it does not keep)."""
    made: list[ComputeMeter] = []

    class Counted(ComputeMeter):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    original = calkit.train.ComputeMeter
    calkit.train.ComputeMeter = Counted
    try:
        yield made
    finally:
        calkit.train.ComputeMeter = original


def measure(entry_name: str, seed: int, noise: float, out: Path, source: str) -> dict:
    with counted_training() as meters:
        r = reviewed_run(entry_name, seed, noise, out, source)
    review_gradients = sum(m.sample_gradients for m in meters)
    k = r.k
    ids = np.array([s.item_id for s in r.suspects], dtype=np.int64)
    noisy = np.array([s.given for s in r.suspects], dtype=np.int64)
    corrected = noisy.copy()
    corrected[:k] = r.truth[:k]
    labelings = {"noisy": noisy, "corrected": corrected, "clean": r.truth.astype(np.int64)}
    order = np.argsort(ids)  # one item order for every labeling: the same batches
    loop = ActiveLoop.open(r.path, dataset=r.dataset)
    try:
        fits = {name: fresh_model(loop, ids[order], labels[order]) for name, labels in labelings.items()}
    finally:
        loop.close()
    row = {"entry": entry_name, "seed": seed, "labels": len(ids), "wrong": k, "fixed": int(r.wrong[:k].sum()),
           "review_gradients": review_gradients, "run_test_accuracy": r.test_accuracy}
    for name, fit in fits.items():
        row.update({f"{name}_{key}": value for key, value in fit.items()})
    return row


def table_row(name: str, rows: list[dict]) -> str:
    """One entry's Markdown row: means over seeds, paired differences with their 95 % t-intervals."""

    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in rows)

    def paired(key: str) -> str:
        diffs = [r[f"{key}_test_accuracy"] - r["noisy_test_accuracy"] for r in rows]
        low, high = ci95(diffs) or (float("nan"),) * 2
        return f"{statistics.fmean(diffs):+.4f} [{low:+.4f}, {high:+.4f}]"

    grads = " / ".join(f"{mean(f'{n}_sample_gradients'):,.0f}" for n in LABELINGS)
    return (f"| {name} | {mean('labels'):.0f} | {mean('wrong'):.1f} | {mean('fixed'):.1f} | "
            f"{mean('noisy_test_accuracy'):.4f} | {mean('corrected_test_accuracy'):.4f} | "
            f"{mean('clean_test_accuracy'):.4f} | {paired('corrected')} | {paired('clean')} | "
            f"{mean('review_gradients'):,.0f} | {grads} |")


def main(argv: list[str] | None = None) -> int:
    args = review_arguments(__doc__.split("\n\n")[0]).parse_args(argv)
    print(f"noise {args.noise:g} (uniform), seeds {list(args.seeds)}; k = the wrong labels a run holds; "
          f"fresh models, the initial-round rule\n")
    print("| entry | labels | wrong (k) | fixed in the top k | test accuracy: noisy | corrected | clean | "
          "corrected - noisy [95 % interval] | clean - noisy [95 % interval] | sample-gradients: review | "
          "one training: noisy / corrected / clean |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
    for name in args.entry or ENTRIES:
        rows = []
        for seed in args.seeds:
            rows.append(measure(name, seed, args.noise, args.out, args.source))
            print(rows[-1], file=sys.stderr, flush=True)
        print(table_row(name, rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
