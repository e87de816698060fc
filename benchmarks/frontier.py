"""The speed-up / relative-accuracy frontier of CAL settings on one dataset of the cpu suite.

Every variant is the `cal` policy with some settings changed; all of them are compared against
the same standard-AL (reset) runs, in the `paper` setup of `calkit compare`, over the same seeds
and budgets. Finished runs are reused, so a stopped sweep continues where it stopped.

    python benchmarks/frontier.py --entry fashion-mnist-mlp --seeds 3 --out runs/frontier
    python benchmarks/frontier.py --entry digits-mlp --variants default,lean-e5 --seeds 1 --out /tmp/fr

Output: a markdown table per entry of every variant finished so far (variant, its settings, mean
relative accuracy over the budgets, the worst budget's, mean sample-gradient / train-time /
end-to-end speed-ups, and the share of continual rounds the new-items rule ended before the epoch
cap), also written to OUT/ENTRY/frontier.md. ``--table-only`` runs nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np

from calkit.bench import CPU_SUITE
from calkit.compare import CompareSpec, run_compare

#: name -> RunConfig overrides for the `cal` policy. "default" is cal as shipped (replay fraction
#: 1/2, new-items rule capped at 10 epochs, LR scaling, cosine restarted each round, initial
#: round capped at 20 epochs). The ablations are measured against "shared-start", the default
#: with the initial round capped like reset's (50 epochs), so that they share reset's model.
VARIANTS: dict[str, dict] = {
    "default": {},
    "shared-start": dict(max_epochs=50),
    # what each ingredient contributes, removed one at a time from shared-start
    "paper-like": dict(replay_fraction=2 / 3, max_new_epochs=20, lr_scaling=False, schedule="constant", max_epochs=50),
    "no-cosine": dict(schedule="constant", max_epochs=50),
    "no-lr-scaling": dict(lr_scaling=False, max_epochs=50),
    # schedules
    "infinite": dict(schedule="infinite", max_epochs=50),
    "wsd": dict(schedule="wsd", max_epochs=50),
    # replay fraction at (about) equal compute: epochs x (1 + m'/m) = 18 passes over the new batch
    # at most (the default's cap allows 10 x 2 = 20)
    "replay-05-e17": dict(replay_fraction=0.05, max_new_epochs=17, max_epochs=50),
    "replay-20-e14": dict(replay_fraction=0.20, max_new_epochs=14, max_epochs=50),
    "replay-33-e12": dict(replay_fraction=0.33, max_new_epochs=12, max_epochs=50),
    "replay-67-e6": dict(replay_fraction=2 / 3, max_new_epochs=6, max_epochs=50),
    "replay-67-e5": dict(replay_fraction=2 / 3, max_new_epochs=5, max_epochs=50),
    # round length around the default: its cap, the new-items threshold, the initial round
    "e12": dict(max_new_epochs=12),  # the default before 2026-11-28's second tuning pass
    "e8": dict(max_new_epochs=8),
    "t95": dict(new_accuracy=0.95),
    "i15": dict(max_epochs=15),
    # the leanest setting at parity on the larger datasets, with the default's initial round
    "lean-e5": dict(replay_fraction=2 / 3, max_new_epochs=5),
    # acquisition on a random subset of 10 x the round size
    "subset-10": dict(score_multiple=10, max_epochs=50),
}

def run_entry(entry_name: str, variants: list[str], seeds: int, out: Path, run: bool = True) -> str:
    """Run the variants (unless ``run`` is False), then tabulate every variant finished so far."""
    entry = next((e for e in CPU_SUITE if e.name == entry_name), None)
    if entry is None:
        raise SystemExit(f"unknown entry {entry_name!r}; choose one of {', '.join(e.name for e in CPU_SUITE)}")

    def spec(base, policies):
        return CompareSpec(base, policies, tuple(range(seeds)), entry.budgets, ("paper",), entry.max_round_size)

    if run:
        baseline = out / entry.name / "_baseline"
        run_compare(spec(entry.base, ()), baseline, log=lambda line: None)  # reset alone, as the suite runs it
        for name in variants:
            target = out / entry.name / name
            _share_baseline(baseline, target, seeds)
            summary = run_compare(spec(dataclasses.replace(entry.base, **VARIANTS[name]), ("cal",)), target,
                                  log=lambda line: None)
            row = _mean_row(summary["setups"]["paper"]["policies"]["cal"]["budgets"])
            print(f"{entry.name} {name}: {json.dumps(row)}", flush=True)
    rows = []
    for name in VARIANTS:  # every finished variant, in the table's order
        path = out / entry.name / name / "summary.json"
        if path.exists():
            summary = json.loads(path.read_text())
            row = _mean_row(summary["setups"]["paper"]["policies"]["cal"]["budgets"])
            row["ended_early"] = _ended_early(out / entry.name / name / "paper", seeds)
            rows.append((name, row))
    table = _format(entry.name, rows)
    (out / entry.name / "frontier.md").write_text(table + "\n")
    return table


def _share_baseline(baseline: Path, target: Path, seeds: int) -> None:
    """Point the variant's reset runs at the shared ones: every variant meets the same baseline,
    which keeps the constant schedule and scores the whole pool whatever the variant changes."""
    for seed in range(seeds):
        link = target / "paper" / f"reset-s{seed}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((baseline / "paper" / f"reset-s{seed}").resolve(), target_is_directory=True)


def _mean_row(budgets: list[dict]) -> dict:
    mean = lambda key: round(float(np.mean([b[key] for b in budgets])), 4)  # noqa: E731
    return {
        "relative_accuracy": mean("relative_accuracy"),
        "worst_relative_accuracy": round(min(b["relative_accuracy"] for b in budgets), 4),
        "speedup_sample_gradients": mean("speedup_sample_gradients"),
        "speedup_train_seconds": mean("speedup_train_seconds"),
        "speedup_end_to_end": mean("speedup_end_to_end"),
    }


def _ended_early(setup_dir: Path, seeds: int) -> float:
    """Share of the continual rounds that the new-items rule ended before the epoch cap: what
    the adaptive round length actually did, as opposed to the cap."""
    early = total = 0
    for seed in range(seeds):
        records = [json.loads(line) for line in (setup_dir / f"cal-s{seed}" / "metrics.jsonl").read_text().splitlines()]
        for record in records[1:]:
            cap = int(re.search(r"cap (\d+) epochs", record["stop_rule"]).group(1))
            early += record["epochs"] < cap
            total += 1
    return early / max(total, 1)


def _format(entry: str, rows: list[tuple[str, dict]]) -> str:
    lines = [
        f"### {entry}", "",
        "| variant | settings | relative accuracy | worst budget | speed-up grads | speed-up train s | end to end "
        "| rounds ended early |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        settings = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in VARIANTS[name].items())
        lines.append(
            f"| {name} | {settings or 'as shipped'} | {r['relative_accuracy']:.4f} | {r['worst_relative_accuracy']:.4f} | "
            f"{r['speedup_sample_gradients']:.2f}x | {r['speedup_train_seconds']:.2f}x | {r['speedup_end_to_end']:.2f}x | "
            f"{r['ended_early']:.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entry", action="append",
                        help="cpu-suite entry (repeatable) [fashion-mnist-mlp, fine-foods-mlp, vader-amazon-mlp]")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated variant names [all]")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table-only", action="store_true", help="run nothing; tabulate the finished variants")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    entries = args.entry or ["fashion-mnist-mlp", "fine-foods-mlp", "vader-amazon-mlp"]
    for name in entries:
        print(run_entry(name, variants, args.seeds, args.out, run=not args.table_only), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
