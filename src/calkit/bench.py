"""`calkit bench`: the benchmark suites, as data, and running them.

``cpu`` is sized for a 2-core machine (the whole suite in well under 45 minutes there);
``paper`` is the CAL paper's reference setting (ResNet-18 on Fashion-MNIST, SGD) for a GPU.
Every run goes to an ordinary resumable comparison directory under ``--out``, and ``bench.json``
there records what ran, on which machine, for how long.

Nothing here writes outside ``--out``: an installed library has no business rewriting a
repository's files. Publishing (copying the small result files into ``benchmarks/results`` and
regenerating BENCHMARKS.md's section) is the repository's own script,
``python benchmarks/publish.py OUT``, which reads only what this module wrote.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from calkit.compare import CompareSpec, run_compare
from calkit.compare_report import format_headline
from calkit.config import RunConfig
from calkit.errors import CalkitError
from calkit.machine import machine_info

#: The record of a suite's runs in ``--out``, read by ``benchmarks/publish.py``.
MANIFEST = "bench.json"


@dataclass(frozen=True)
class Entry:
    """One comparison of a suite.

    ``tuning`` marks the datasets whose validation splits chose calkit's defaults (cal's and the
    tuned reset's); every other entry is evaluation-only: no default was chosen by looking at it.
    """

    name: str
    base: RunConfig
    tuning: bool
    policies: tuple[str, ...] = ("er", "sd", "cal")
    budgets: tuple[str, ...] = ("10%", "15%", "20%", "25%", "30%")
    max_round_size: int | None = None  #: None: compare's default, about 2.5 % of the pool
    setups: tuple[str, ...] = ("paper",)
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def spec(self, seeds: tuple[int, ...]) -> CompareSpec:
        return CompareSpec(self.base, self.policies, seeds, self.budgets, self.setups, self.max_round_size)


def _cfg(**kw) -> RunConfig:
    return RunConfig(rounds=1, **kw)


CPU_SUITE = (
    Entry("digits-mlp", _cfg(dataset="digits", model="mlp"), tuning=True),
    Entry("fashion-mnist-mlp", _cfg(dataset="fashion-mnist", model="mlp", pool_size=10000), tuning=True,
          notes="a fixed 10,000-image subset of the pool"),
    Entry("fine-foods-mlp", _cfg(dataset="fine-foods", model="mlp:256"), tuning=True),
    Entry("vader-amazon-mlp", _cfg(dataset="vader-amazon", model="mlp:256"), tuning=False),
    Entry("pbmc-mlp", _cfg(dataset="pbmc", model="mlp:256"), tuning=False),
    Entry("fashion-mnist-convnet", _cfg(dataset="fashion-mnist", model="convnet", pool_size=4000), tuning=False,
          max_round_size=200, notes="a fixed 4,000-image subset; rounds of 5 % to keep the ConvNet's reset runs "
          "affordable on a CPU"),
    Entry("vader-movies-mlp", _cfg(dataset="vader-movies", model="mlp:256"), tuning=False),
    Entry("cells-mlp", _cfg(dataset="cells", model="mlp:256"), tuning=False),
)

PAPER_SUITE = (
    Entry("fashion-mnist-resnet18", _cfg(dataset="fashion-mnist", model="resnet18", optimizer="sgd", lr=0.05,
                                         momentum=0.9, weight_decay=5e-4, batch_size=64, replay_size=128,
                                         max_epochs=99),
          tuning=False, max_round_size=1000, notes="the CAL paper's Fashion-MNIST setting"),
)


def suite_entries(suite: str, names: tuple[str, ...] | None = None) -> tuple[Entry, ...]:
    """The entries of a suite, or the named ones (an unknown name is an error)."""
    entries = CPU_SUITE if suite == "cpu" else PAPER_SUITE
    if not names:
        return entries
    known = {e.name: e for e in entries}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CalkitError(f"unknown {suite} suite entries {unknown}; choose from {', '.join(known)}")
    return tuple(known[n] for n in names)


def run_bench(
    suite: str, out: Path, device: str | None, force: bool, seeds: tuple[int, ...],
    entries: tuple[str, ...] | None = None,
) -> int:
    """Run a suite (or some of its ``entries``) into ``out`` and record them in ``out/bench.json``."""
    chosen = suite_entries(suite, entries)
    device = device or ("cuda" if suite == "paper" else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        if not force:
            raise CalkitError(
                f"the {suite} suite is meant for a GPU and none is available here; on this machine it would take "
                f"about {estimate_cpu_hours(chosen[0], len(seeds)):.0f} hours. Pass --device cpu --force to run it "
                "anyway"
            )
        device = "cpu"
    for entry in chosen:
        spec = dataclasses.replace(entry.spec(seeds), base=dataclasses.replace(entry.base, device=device))
        print(f"== {entry.name} ==", flush=True)
        t0 = time.perf_counter()
        summary = run_compare(spec, out / entry.name)
        print(format_headline(summary), flush=True)
        seconds = _entry_seconds(out / entry.name, time.perf_counter() - t0)
        _record(out, suite, seeds, entry, seconds)
    print(f"results in {out} ({out / MANIFEST}); to publish them from a calkit checkout: "
          f"python benchmarks/publish.py {out} --results benchmarks/results/{suite}_suite_{time.strftime('%Y-%m-%d')}")
    return 0


def _record(out: Path, suite: str, seeds: tuple[int, ...], entry: Entry, seconds: float) -> None:
    """Add a finished entry to ``out/bench.json`` (kept across partial runs of the same suite and
    seeds), with the machine and the command, so publishing needs nothing but this folder."""
    path = out / MANIFEST
    old = json.loads(path.read_text()) if path.exists() else {}
    same = old.get("suite") == suite and old.get("seeds") == list(seeds)
    done = {**(old.get("entries", {}) if same else {}),
            entry.name: {"tuning": entry.tuning, "notes": entry.notes, "seconds": round(seconds, 1)}}
    order = [e.name for e in suite_entries(suite)]
    manifest = {
        "suite": suite, "seeds": list(seeds), "suite_entries": order,
        "command": f"calkit bench {suite} --seeds {seeds_text(seeds)} --out {out}",
        "machine": machine_info(),
        "entries": {name: done[name] for name in order if name in done},
    }
    path.write_text(json.dumps(manifest, indent=1) + "\n")


def _entry_seconds(entry_dir: Path, measured: float) -> float:
    """Wall seconds of the pass that first finished the entry (kept in ``bench_seconds.txt``), so a
    rerun that reuses finished runs does not report its own, shorter time as the entry's."""
    path = entry_dir / "bench_seconds.txt"
    if path.exists():
        return float(path.read_text())
    path.write_text(f"{measured:.1f}\n")
    return measured


def estimate_cpu_hours(entry: Entry, seeds: int) -> float:
    """Sample-gradients the suite needs (cost model) over measured CPU throughput of its model."""
    from calkit.models import build_model

    torch.manual_seed(0)
    model = build_model(entry.base.model, (1, 28, 28), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))  # one small step: an estimate to hours
    start = time.perf_counter()
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    per_sample = (time.perf_counter() - start) / 16
    pool, fractions = 60000, np.array([0.10, 0.15, 0.20, 0.25, 0.30])
    labeled = np.arange(int(pool * fractions[0]), int(pool * fractions[-1]) + 1, entry.max_round_size or 3000)
    reset_grads = 30 * labeled.sum()  # about 30 epochs a round to 99 % training accuracy
    scoring = 3 * len(labeled) * pool  # a forward costs about a third of a training sample
    policies = len(entry.policies) + 2  # and the two baselines
    return seeds * policies * 0.5 * (reset_grads + scoring) * per_sample / 3600


def seeds_text(seeds: tuple[int, ...]) -> str:
    """How `--seeds` spells these seeds: N, FIRST-LAST or a list."""
    if seeds == tuple(range(len(seeds))):
        return str(len(seeds))
    if seeds == tuple(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))
