"""`calkit compare`: every policy from the same initial sets, measured against standard AL.

For each setup (stopping rules), seed and policy one ordinary run directory is made under
``OUT/SETUP/POLICY-sSEED``; a finished run is reused and a stopped one resumed, so a long
comparison survives interruption. The summary compares each policy with ``reset`` at the
budget checkpoints: relative accuracy (policy mean / reset mean) and speed-ups (reset's
cumulative cost / the policy's, up to that budget) in training seconds, sample-gradients and
end to end (training plus acquisition).

Setups: ``paper`` runs each policy with its own default stopping rule (standard AL until 99 %
running training accuracy, capped; CAL a fixed number of epochs over the new batch, which
``--epochs`` sets), as the CAL paper did; ``same`` gives every policy the same fixed number of epochs, a like-for-like
comparison.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from calkit.compare_report import (
    is_continual,
    summarize,
    with_baseline,
    write_report,
)
from calkit.config import RunConfig, parse_budget
from calkit.data import Dataset
from calkit.errors import ConfigError
from calkit.loop import ActiveLoop, RunDirectory, dataset_for
from calkit.policies import resolve_policy_name
from calkit.policies.replay import DEFAULT_CAL_EPOCHS

PAPER_FRACTIONS = ("10%", "15%", "20%", "25%", "30%")
SETUPS = ("paper", "same")


@dataclass(frozen=True)
class CompareSpec:
    """What to compare: policies x seeds x setups on one dataset and model."""

    base: RunConfig
    policies: tuple[str, ...]
    seeds: tuple[int, ...]
    budgets: tuple[str, ...] = PAPER_FRACTIONS
    setups: tuple[str, ...] = ("paper",)
    max_round_size: int | None = None
    same_epochs: int = DEFAULT_CAL_EPOCHS

    def __post_init__(self) -> None:
        for name in self.policies:
            resolve_policy_name(name)
        unknown = set(self.setups) - set(SETUPS)
        if unknown:
            raise ConfigError(f"unknown setups {sorted(unknown)}; choose from {', '.join(SETUPS)}")
        if not self.seeds:
            raise ConfigError("compare needs at least one seed")


def budget_counts(budgets: tuple[str, ...], pool_size: int) -> list[int]:
    """Budget checkpoints as label counts, strictly increasing."""
    counts = [parse_budget(b, pool_size) for b in budgets]
    if any(c > pool_size for c in counts):
        raise ConfigError(f"budgets {counts} exceed the pool of {pool_size} items")
    if counts != sorted(set(counts)) or counts[0] < 1:
        raise ConfigError(f"budgets must be distinct and increasing, got {counts}")
    return counts


def round_plan(counts: list[int], max_round_size: int | None) -> list[int]:
    """Round sizes whose cumulative sums pass through every budget checkpoint."""
    sizes = [counts[0]]
    for prev, nxt in zip(counts, counts[1:]):
        gap = nxt - prev
        pieces = 1 if not max_round_size else math.ceil(gap / max_round_size)
        base, extra = divmod(gap, pieces)
        sizes += [base + (1 if i < extra else 0) for i in range(pieces)]
    return sizes


def run_config(spec: CompareSpec, setup: str, policy: str, seed: int, sizes: list[int]) -> RunConfig:
    cfg = dataclasses.replace(
        spec.base, policy=policy, seed=seed, round_sizes=sizes, rounds=None, budget=None, keep_checkpoints="all"
    )
    if setup == "same":
        cfg = dataclasses.replace(cfg, epochs=spec.same_epochs, train_accuracy=None)
    elif not is_continual(policy):
        cfg = dataclasses.replace(cfg, epochs=None)  # paper: --epochs is the CAL side's; AL trains to accuracy
    return cfg


def run_compare(
    spec: CompareSpec, out: str | Path, dataset: Dataset | None = None, log: Callable[[str], None] = print
) -> dict:
    """Run (or resume) every run of the comparison, then write summary.json and report.md."""
    out = Path(out)
    dataset = dataset or dataset_for(spec.base)
    counts = budget_counts(spec.budgets, dataset.pool_size)
    sizes = round_plan(counts, spec.max_round_size)
    policies = with_baseline(spec.policies)
    total = len(spec.setups) * len(spec.seeds) * len(policies)
    done = 0
    for setup in spec.setups:
        for seed in spec.seeds:
            for policy in policies:
                cfg = run_config(spec, setup, policy, seed, sizes)
                start = time.perf_counter()
                records = run_one(out / setup / f"{policy}-s{seed}", cfg, dataset)
                done += 1
                last = records[-1]
                log(
                    f"[{done}/{total}] {setup} {policy} seed {seed}: accuracy {last['test_accuracy']:.4f} at "
                    f"{last['labeled']} labels, {last['sample_gradients']:,} sample-gradients, "
                    f"{time.perf_counter() - start:.1f} s"
                )
    summary = summarize(out, spec, counts, dataset)
    write_report(out, summary)
    return summary


def run_one(path: Path, cfg: RunConfig, dataset: Dataset) -> list[dict]:
    """One run to completion: created, resumed, or reused when already finished."""
    if RunDirectory(path).exists():
        loop = ActiveLoop.open(path, dataset=dataset)
    else:
        loop = ActiveLoop.create(path, cfg, dataset=dataset)
    try:
        status = loop.run()
        if not status.complete:
            raise ConfigError(f"{path}: compare needs a simulated oracle; the run awaits labels")
        return loop.ledger.metrics()
    finally:
        loop.close()
