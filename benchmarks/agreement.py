"""Does the pilot's agreement gate open and close where it should? Simulated annotators, real desk.

    python benchmarks/agreement.py --noise 0,0.1,0.3 --sizes 10,30 --pilots 200

For each noise rate and pilot size, pilots run one after another on a people-oracle run
(digits by default) through calkit's own path: `calkit.labeling.pilot.start`, then each of
three simulated annotators takes the pilot's items from the `Desk` and answers them, wrong with
the given probability (calkit.noise: uniform or pairs), independently per annotator and item.
Each pilot's Krippendorff's alpha and gate decision (threshold 0.8) are recorded.

What the noise implies: with true-class shares pi and the noise model's confusion matrix C (row:
true class, column: answer), two annotators disagree on an item with probability
D_o = 1 - sum_c pi_c sum_a C[c,a]^2, while answers drawn from the answer shares pi' = pi C
disagree by chance with probability D_e = 1 - sum_a pi'_a^2; alpha tends to 1 - D_o / D_e as the
pilot grows. The table compares the pilots' alphas with that limit, and reports how often the
gate opened: it should open when the implied alpha is above the threshold, stay closed below it,
and a pilot's size decides how clearly it can tell.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from calkit import Run
from calkit.labeling import Accounts, Desk
from calkit.labeling import pilot as pilots
from calkit.noise import NoiseModel

RATERS = ("sim-0", "sim-1", "sim-2")
#: Pilots per run (the desk reads the whole open round on each request: keep round 0 small).
PILOTS_PER_RUN = 20


def confusion(model: NoiseModel, n_classes: int, seed: int) -> np.ndarray:
    """The noise model's answer probabilities, row = true class."""
    keep = np.eye(n_classes) * (1 - model.rate)
    if model.kind == "uniform":
        return keep + (1 - np.eye(n_classes)) * model.rate / (n_classes - 1)
    flip = np.zeros((n_classes, n_classes))
    flip[np.arange(n_classes), model.partner(n_classes, seed)] = model.rate
    return keep + flip


def implied_alpha(shares: np.ndarray, matrix: np.ndarray) -> float:
    observed = 1 - float(shares @ (matrix ** 2).sum(axis=1))
    answers = shares @ matrix
    expected = 1 - float((answers ** 2).sum())
    return 1 - observed / expected


def run_pilots(dataset: str, model: NoiseModel, size: int, count: int, threshold: float, seed: int,
               workdir: Path) -> list[tuple[float | None, bool]]:
    """``count`` pilots of ``size`` items, on as many fresh runs as the pool needs."""
    results: list[tuple[float | None, bool]] = []
    run_index = 0
    while len(results) < count:
        path = workdir / f"{model.kind}-{model.rate}-{size}-{run_index}"
        with Run.create(path, dataset=dataset, oracle="people", initial=size, rounds=2, round_size=size,
                        epochs=1, model="mlp:8", seed=seed + run_index) as probe:
            room = probe.dataset.pool_size // size - 2
        initial = size * min(count - len(results), room, PILOTS_PER_RUN)
        with Run.create(path.with_name(path.name + "-r"), dataset=dataset, oracle="people", initial=initial,
                        rounds=2, round_size=size, epochs=1, model="mlp:8", seed=seed + run_index) as run:
            for name in RATERS:
                Accounts(run._ledger).add(name)
            desk = Desk(run)
            ds = run.dataset
            noisy = {}
            for k, name in enumerate(RATERS):  # each annotator's own independent mistakes
                items = run._ledger.query(0).ids
                answers, _ = model.answers(ds.y_train[ds.positions(items)], ds.positions(items), ds.pool_size,
                                           len(run.class_names), seed=1000 * (seed + run_index) + k)
                noisy[name] = dict(zip(items.tolist(), answers.tolist()))
            for _ in range(initial // size):
                started = pilots.start(run, "bench", size, threshold)
                for name in RATERS:
                    for _ in range(size):
                        lease = desk.next(name)
                        desk.submit(name, lease.item_id, noisy[name][lease.item_id], f"{name}-{lease.item_id}")
                decided = desk.pilot()
                assert decided.pilot_id == started.pilot_id and decided.state in ("passed", "failed")
                results.append((decided.alpha, decided.state == "passed"))
                if decided.state == "failed":
                    pilots.open_gate(run, "bench", "benchmark: next pilot")
        run_index += 1
    return results[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--noise", default="0,0.1,0.3", help="comma-separated rates")
    parser.add_argument("--noise-model", default="uniform", choices=("uniform", "pairs"))
    parser.add_argument("--sizes", default="10,30", help="pilot sizes, comma-separated")
    parser.add_argument("--pilots", type=int, default=200, help="pilots per noise rate and size")
    parser.add_argument("--threshold", type=float, default=pilots.DEFAULT_THRESHOLD)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.noise.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"| noise ({args.noise_model}) | pilot items | pilots | implied alpha | mean alpha | 5th-95th percentile "
          f"| undefined | gate opened (alpha >= {args.threshold:g}) | should |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|---|")
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        with Run.create(Path(tmp) / "shares", dataset=args.dataset, oracle="people", initial=10, rounds=1,
                        epochs=1, model="mlp:8") as probe:
            n_classes = len(probe.class_names)
            shares = np.bincount(probe.dataset.y_train, minlength=n_classes) / len(probe.dataset.y_train)
        for rate in rates:
            model = NoiseModel(args.noise_model, rate)
            implied = implied_alpha(shares, confusion(model, n_classes, args.seed))
            for size in sizes:
                results = run_pilots(args.dataset, model, size, args.pilots, args.threshold, args.seed, Path(tmp))
                alphas = [a for a, _ in results if a is not None]
                opened = sum(passed for _, passed in results)
                spread = (f"{np.percentile(alphas, 5):.3f} - {np.percentile(alphas, 95):.3f}" if alphas else "")
                print(f"| {rate:g} | {size} | {len(results)} | {implied:.3f} | "
                      f"{statistics.fmean(alphas) if alphas else float('nan'):.3f} | {spread} | "
                      f"{len(results) - len(alphas)} | {opened / len(results):.0%} | "
                      f"{'open' if implied >= args.threshold else 'closed'} |", flush=True)
    print(f"\n{args.dataset}, 3 simulated annotators, threshold {args.threshold:g}; {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
