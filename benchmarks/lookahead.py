"""What lookahead costs in accuracy: `cal` with and without it, on the CPU suite's datasets.

    python benchmarks/lookahead.py --bench runs/bench --seeds 100-102

With lookahead, round t+1's query opens as soon as round t has its labels, chosen by the model
of round t-1, so people label while round t trains; the price is a selection one round staler.
This measures that price with the comparison machinery of `calkit compare`: for each suite
entry and seed, `cal` continues from the seed's shared start (``BENCH/ENTRY/start/sSEED``) with
the same round plan, once as `calkit compare` runs it (``BENCH/ENTRY/paper/cal-sSEED``) and
once with ``lookahead: true`` (``BENCH/ENTRY/lookahead/cal-sSEED``). Runs that a finished
`calkit bench cpu --out BENCH` already holds are reused (its cal runs are the plain arm);
anything missing is run here, and a stopped benchmark resumes.

Per entry and budget after the shared start, the table gives the mean over seeds of each seed's
ratio lookahead / plain (paired: same start, same seed) with a 95 % t-interval, on the
validation and on the test split. The rule, fixed before the runs: lookahead becomes the default
only if on every entry the validation ratio, averaged over the budgets after the start, has a
mean of at least 0.995 and a 95 % interval that contains 1 (its cost is inside the noise).
The decision reads the validation split only; the test columns are reported beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

from calkit.bench import CPU_SUITE, Entry
from calkit.cli import parse_seeds
from calkit.compare import budget_counts, default_round_size, round_plan, run_config, run_one, start_config
from calkit.loop import dataset_for
from calkit.stats import ci95

POLICY = "cal"
RULE_MEAN = 0.995


def run_entry(entry: Entry, bench: Path, seeds: tuple[int, ...]) -> dict:
    """Both arms of every seed (reusing finished runs); per budget, the paired ratios."""
    dataset = dataset_for(entry.base)
    counts = budget_counts(entry.budgets, dataset.pool_size)
    sizes = round_plan(counts, entry.max_round_size or default_round_size(dataset.pool_size))
    spec = entry.spec(seeds)
    ratios: dict[str, list[list[float]]] = {"val": [], "test": []}
    for seed in seeds:
        start = bench / entry.name / "start" / f"s{seed}"
        run_one(start, start_config(spec, seed, sizes), dataset)
        plain_cfg = run_config(spec, "paper", POLICY, seed, sizes)
        plain = run_one(bench / entry.name / "paper" / f"{POLICY}-s{seed}", plain_cfg, dataset, start=start)
        ahead = run_one(bench / entry.name / "lookahead" / f"{POLICY}-s{seed}",
                        dataclasses.replace(plain_cfg, lookahead=True), dataset, start=start)
        at = {r["labeled"]: r for r in plain}, {r["labeled"]: r for r in ahead}
        for split in ratios:
            key = f"{split}_accuracy"
            ratios[split].append([at[1][n][key] / at[0][n][key] for n in counts[1:]])
    return {"counts": counts[1:], "ratios": ratios}


def interval_text(values: list[float]) -> str:
    low, high = ci95(values) or (float("nan"), float("nan"))
    return f"{statistics.fmean(values):.4f} [{low:.3f}, {high:.3f}]"


def format_tables(results: dict[str, dict], seeds: tuple[int, ...]) -> tuple[str, bool]:
    """The summary table (one row per entry) and whether the rule makes lookahead the default."""
    lines = [f"Seeds {list(seeds)}; ratio lookahead / plain per seed, mean and 95 % t-interval over seeds, averaged "
             "over the budgets after the shared start.", "",
             "| entry | val ratio | inside the noise | test ratio | worst budget (val) |", "|---|---:|---|---:|---|"]
    verdict = True
    for name, result in results.items():
        per_seed = {split: [statistics.fmean(r) for r in result["ratios"][split]] for split in ("val", "test")}
        interval = ci95(per_seed["val"])
        inside = interval is not None and statistics.fmean(per_seed["val"]) >= RULE_MEAN and interval[0] <= 1 <= interval[1]
        verdict &= inside
        by_budget = [[seed[b] for seed in result["ratios"]["val"]] for b in range(len(result["counts"]))]
        worst = min(range(len(by_budget)), key=lambda b: statistics.fmean(by_budget[b]))
        lines.append(f"| {name} | {interval_text(per_seed['val'])} | {'yes' if inside else '**no**'} | "
                     f"{interval_text(per_seed['test'])} | {interval_text(by_budget[worst])} at "
                     f"{result['counts'][worst]:,} |")
    lines += ["", f"Rule (fixed before the runs): default only if every entry is inside the noise on the validation "
              f"split (mean >= {RULE_MEAN} and the interval contains 1). Verdict: "
              f"{'lookahead can be the default' if verdict else 'lookahead stays off by default'}."]
    return "\n".join(lines), verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=Path("runs/bench"),
                        help="a `calkit bench cpu` output to reuse and extend [%(default)s]")
    parser.add_argument("--seeds", type=parse_seeds, default=(100, 101, 102), help="[100-102]")
    parser.add_argument("--entry", action="append", help="suite entry (repeatable) [all]")
    args = parser.parse_args(argv)
    entries = [e for e in CPU_SUITE if not args.entry or e.name in args.entry]
    if args.entry and len(entries) != len(args.entry):
        parser.error(f"unknown entry; choose from {', '.join(e.name for e in CPU_SUITE)}")
    results = {}
    for entry in entries:
        begin = time.perf_counter()
        results[entry.name] = run_entry(entry, args.bench, tuple(args.seeds))
        print(f"{entry.name}: {time.perf_counter() - begin:.0f} s", file=sys.stderr, flush=True)
    table, _ = format_tables(results, tuple(args.seeds))
    print(table)
    (args.bench / "lookahead.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
