"""`calkit compare`: every policy from the same trained start, measured against standard AL.

For each seed the initial round is trained once (``OUT/start/sSEED``) and every policy's run
takes it over, so all of them continue from the same model and the first budget is identical by
construction. For each setup, seed and policy one ordinary run directory is made under
``OUT/SETUP/POLICY-sSEED``; a finished run is reused and a stopped one resumed, so a long
comparison survives interruption.

Two standard-AL baselines run beside the policies: ``reset-tuned`` (settings tuned on validation
data; every headline number is against it) and ``reset`` (the CAL paper's rule). The summary
compares each policy with them at the budget checkpoints, per seed: relative accuracy with a
95 % interval, and speed-ups (the baseline's cumulative cost over the policy's) in training
seconds, sample-gradients, compute and end to end (training plus acquisition).

Setups: ``paper`` runs each policy with its own default stopping rule (standard AL until 99 %
running training accuracy, capped; CAL a fixed number of epochs over the new batch, which
``--epochs`` sets), as the CAL paper did; ``same`` gives every policy the same fixed number of
epochs and the same learning-rate schedule, so that what differs is how a round trains (each
policy keeps its own learning rate and warm start: cal's replay scaling and shrink and perturb).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from calkit.compare_report import (
    PAPER_BASELINE,
    is_continual,
    summarize,
    with_baselines,
    write_report,
)
from calkit.config import RunConfig, parse_budget
from calkit.data import Dataset
from calkit.errors import ConfigError
from calkit.distributed import current
from calkit.loop import ActiveLoop, RunDirectory, dataset_for
from calkit.resolve import resolve
from calkit.policies import resolve_policy_name
from calkit.policies.replay import DEFAULT_CAL_EPOCHS

PAPER_FRACTIONS = ("10%", "15%", "20%", "25%", "30%")
SETUPS = ("paper", "same")
#: Rounds between budget checkpoints are at most this share of the pool unless --round-size says
#: otherwise: many small rounds, as in the CAL paper and the benchmark suite.
DEFAULT_ROUND_FRACTION = 0.025
#: The `same` setup's schedule for every policy when the run names none.
SAME_SCHEDULE = "cosine"


@dataclass(frozen=True)
class CompareSpec:
    """What to compare: policies x seeds x setups on one dataset and model."""

    base: RunConfig
    policies: tuple[str, ...]
    seeds: tuple[int, ...]
    budgets: tuple[str, ...] = PAPER_FRACTIONS
    setups: tuple[str, ...] = ("paper",)
    max_round_size: int | None = None  #: None: DEFAULT_ROUND_FRACTION of the pool
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


def default_round_size(pool_size: int) -> int:
    """About 2.5 % of the pool: what a comparison uses unless told otherwise."""
    return max(1, round(DEFAULT_ROUND_FRACTION * pool_size))


def round_plan(counts: list[int], max_round_size: int) -> list[int]:
    """Round sizes whose cumulative sums pass through every budget checkpoint."""
    sizes = [counts[0]]
    for prev, nxt in zip(counts, counts[1:]):
        gap = nxt - prev
        pieces = math.ceil(gap / max_round_size)
        base, extra = divmod(gap, pieces)
        sizes += [base + (1 if i < extra else 0) for i in range(pieces)]
    return sizes


def run_config(spec: CompareSpec, setup: str, policy: str, seed: int, sizes: list[int]) -> RunConfig:
    cfg = dataclasses.replace(
        spec.base, policy=policy, seed=seed, round_sizes=sizes, rounds=None, budget=None, keep_checkpoints="all"
    )
    if setup == "same":
        schedule = spec.base.schedule or SAME_SCHEDULE
        cfg = dataclasses.replace(cfg, epochs=spec.same_epochs, train_accuracy=None, schedule=schedule)
    elif not is_continual(policy):
        cfg = dataclasses.replace(cfg, epochs=None)  # paper: --epochs is the CAL side's; AL trains to accuracy
    return cfg


def start_config(spec: CompareSpec, seed: int, sizes: list[int]) -> RunConfig:
    """The run that trains a seed's initial round, which every policy of the seed then takes over."""
    return dataclasses.replace(run_config(spec, "paper", PAPER_BASELINE, seed, sizes), round_sizes=sizes[:1])


def run_compare(
    spec: CompareSpec, out: str | Path, dataset: Dataset | None = None, log: Callable[[str], None] = print
) -> dict:
    """Run (or resume) every run of the comparison, then write summary.json and report.md."""
    out = Path(out)
    dataset = dataset or dataset_for(spec.base)
    counts = budget_counts(spec.budgets, dataset.pool_size)
    sizes = round_plan(counts, spec.max_round_size or default_round_size(dataset.pool_size))
    runs = [(setup, seed, policy) for setup in spec.setups for seed in spec.seeds
            for policy in with_baselines(spec.policies, setup)]
    for seed in spec.seeds:
        run_one(out / "start" / f"s{seed}", start_config(spec, seed, sizes), dataset)
    for done, (setup, seed, policy) in enumerate(runs, 1):
        cfg = run_config(spec, setup, policy, seed, sizes)
        begin = time.perf_counter()
        records = run_one(out / setup / f"{policy}-s{seed}", cfg, dataset, start=out / "start" / f"s{seed}")
        last = records[-1]
        accuracy = "-" if last["test_accuracy"] is None else f"{last['test_accuracy']:.4f}"
        log(
            f"[{done}/{len(runs)}] {setup} {policy} seed {seed}: accuracy {accuracy} at {last['labeled']} labels, "
            f"{last['sample_gradients']:,} sample-gradients, {time.perf_counter() - begin:.1f} s"
        )
    return current().on_main(lambda: _summarize_and_report(out, spec, counts, dataset))


def _summarize_and_report(out: Path, spec: "CompareSpec", counts: list[int], dataset: Dataset) -> dict:
    summary = summarize(out, spec, counts, dataset)
    write_report(out, summary)
    return summary


def run_one(path: Path, cfg: RunConfig, dataset: Dataset, start: Path | None = None) -> list[dict]:
    """One run to completion: created (from ``start``'s initial round), resumed, or reused when finished.

    A run made with other settings (other flags, or defaults that changed since) is refused
    rather than reused: its numbers would not be what this comparison asks for.
    """
    if current().on_main(RunDirectory(path).exists):  # rank 0 decides: it is the one that creates
        loop = ActiveLoop.open(path, dataset=dataset)
        try:
            _check_same_settings(path, loop, cfg)
        except ConfigError:
            loop.close()
            raise
    else:
        loop = ActiveLoop.create(path, cfg, dataset=dataset, start_from=start)
    try:
        status = loop.run()
        if not status.complete:
            raise ConfigError(f"{path}: compare needs a simulated oracle; the run awaits labels")
        return current().on_main(lambda: loop.ledger.metrics())
    finally:
        loop.close()


def _check_same_settings(path: Path, loop: ActiveLoop, cfg: RunConfig) -> None:
    theirs, ours = loop.cfg.to_dict(), resolve(cfg).to_dict()
    differ = sorted(k for k in ours if theirs.get(k) != ours[k])
    if differ:
        shown = "; ".join(f"{k}: {theirs.get(k)!r} there, {ours[k]!r} asked" for k in differ)
        raise ConfigError(f"{path} was made with other settings ({shown}); give the comparison another --out")
    records = current().on_main(lambda: loop.ledger.metrics())
    if records:
        loop.check_rules_unchanged(records[-1])
