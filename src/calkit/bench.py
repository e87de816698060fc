"""`calkit bench`: the benchmark suites, as data, and the BENCHMARKS.md section they write.

``cpu`` is sized for a 2-core machine (the whole suite in well under 45 minutes there);
``paper`` is the CAL paper's reference setting (ResNet-18 on Fashion-MNIST, SGD) for a GPU.
Every run goes to an ordinary resumable comparison directory under ``--out``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from calkit.compare import CompareSpec, run_compare
from calkit.compare_report import PAPER_BASELINE, format_headline, means_table_md
from calkit.config import RunConfig
from calkit.errors import CalkitError
from calkit.machine import machine_info

BEGIN, END = "<!-- calkit bench cpu: begin (generated) -->", "<!-- calkit bench cpu: end -->"


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


PUBLISHED = ("report.md", "summary.json", "scatter.png", "learning_curves.png")


def run_bench(
    suite: str, out: Path, benchmarks_md: Path, device: str | None, force: bool, seeds: tuple[int, ...],
    publish: Path | None = None, entries: tuple[str, ...] | None = None,
) -> int:
    """Run a suite (or some of its ``entries``); the whole cpu suite rewrites its BENCHMARKS.md section.

    ``publish`` receives a copy of each entry's report, summary and plots (small files, unlike
    the run directories with their checkpoints), and the section links there instead of ``out``.
    """
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
    results = []
    for entry in chosen:
        spec = dataclasses.replace(entry.spec(seeds), base=dataclasses.replace(entry.base, device=device))
        print(f"== {entry.name} ==", flush=True)
        t0 = time.perf_counter()
        summary = run_compare(spec, out / entry.name)
        print(format_headline(summary), flush=True)
        reports = _publish(out / entry.name, publish / entry.name) if publish else out / entry.name
        results.append((entry, summary, reports, _entry_seconds(out / entry.name, time.perf_counter() - t0)))
    total = sum(r[3] for r in results)
    if suite == "cpu" and not entries:
        _write_generated(benchmarks_md, results, total, seeds, out, publish)
        print(f"{benchmarks_md} updated ({total / 60:.1f} min)")
    return 0


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
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    start = time.perf_counter()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    per_sample = (time.perf_counter() - start) / (3 * 64)
    pool, fractions = 60000, np.array([0.10, 0.15, 0.20, 0.25, 0.30])
    labeled = np.arange(int(pool * fractions[0]), int(pool * fractions[-1]) + 1, entry.max_round_size or 3000)
    reset_grads = 30 * labeled.sum()  # about 30 epochs a round to 99 % training accuracy
    scoring = 3 * len(labeled) * pool  # a forward costs about a third of a training sample
    policies = len(entry.policies) + 2  # and the two baselines
    return seeds * policies * 0.5 * (reset_grads + scoring) * per_sample / 3600


def _publish(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in PUBLISHED:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    return target


def headline_table(results: list[tuple[Entry, dict, Path, float]], policy: str = "cal") -> list[str]:
    """One row per dataset: the parity verdict and the speed-ups against both baselines."""
    lines = [
        f"| dataset | tuned on | `{policy}` at parity (budgets) | relative accuracy | worst budget [95 % interval] "
        "| x sample-grads | x compute | x end to end | against `reset` (paper rule): relative, x sample-grads, "
        "x compute, x end to end |",
        "|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for entry, summary, _, _ in results:
        data = summary["policies"][policy]
        m, paper = data["mean"], data["against"][PAPER_BASELINE]["mean"]
        later = [b for b in data["budgets"] if not b["shared_start"]]
        worst = min(later, key=lambda b: b["relative_accuracy"])
        ci = worst["relative_accuracy_ci95"]
        interval = "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
        verdict = "yes" if m["budgets_at_parity"] == m["budgets"] else "**no**"
        lines.append(
            f"| {entry.name} | {'tuning' if entry.tuning else 'evaluation only'} | {verdict} "
            f"({m['budgets_at_parity']}/{m['budgets']}) | {m['relative_accuracy']:.4f} | "
            f"{worst['relative_accuracy']:.4f}{interval} at {worst['labeled']:,} | {m['speedup_sample_gradients']:.2f}x | "
            f"{m['speedup_compute']:.2f}x | {m['speedup_end_to_end']:.2f}x | {paper['relative_accuracy']:.4f}, "
            f"{paper['speedup_sample_gradients']:.2f}x, {paper['speedup_compute']:.2f}x, {paper['speedup_end_to_end']:.2f}x |"
        )
    return lines


def _section(entry: Entry, summary: dict, run_dir: Path, seconds: float) -> str:
    role = "tuning dataset" if entry.tuning else "evaluation only"
    lines = [f"### {entry.name} ({role})", "", f"{summary['dataset']}, model `{summary['model']}`, pool "
             f"{summary['pool_size']:,}, budgets {summary['budgets']}, seeds {summary['seeds']}"
             + (f"; {entry.notes}" if entry.notes else "") + f". {seconds / 60:.1f} min.", ""]
    for setup, body in summary["setups"].items():
        rules = "; ".join(f"`{p}`: {r}" for p, r in body["stopping_rules"].items())
        lines += [f"Setup `{setup}`, against `{body['baseline']}`. Initial round (shared): {body['initial_rule']}. "
                  f"Later rounds: {rules}.", ""]
        lines += means_table_md({p: d["mean"] for p, d in body["policies"].items()})
        lines.append("")
    lines += [f"Per budget, per seed, against both baselines, with forgetting, entropy correlation and plots: "
              f"`{run_dir}/report.md`.", ""]
    return "\n".join(lines)


def seeds_text(seeds: tuple[int, ...]) -> str:
    """How `--seeds` spells these seeds: N, FIRST-LAST or a list."""
    if seeds == tuple(range(len(seeds))):
        return str(len(seeds))
    if seeds == tuple(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _write_generated(
    path: Path, results: list[tuple[Entry, dict, Path, float]], seconds: float, seeds: tuple[int, ...], out: Path,
    publish: Path | None,
) -> None:
    command = f"calkit bench cpu --seeds {seeds_text(seeds)} --out {out}" + (f" --publish {publish}" if publish else "")
    tuned = ", ".join(e.name for e, *_ in results if e.tuning)
    body = "\n".join([
        BEGIN, "## CPU suite (`calkit bench cpu`)", "",
        f"{machine_info()}. Regenerate with `{command}` ({seconds / 60:.1f} min here).", "",
        f"Every number is on the test split, with seeds {list(seeds)}; calkit's defaults were chosen on the "
        f"validation splits of the tuning datasets ({tuned}) with seeds 0-2. Every policy of a seed continues "
        "from the same trained initial round, so the first budget is identical by construction and every mean "
        "leaves it out. Relative accuracy is the mean over seeds of each seed's ratio to the baseline run with "
        "the same seed; a budget is at parity when that mean is >= 0.995 and the lower end of its 95 % "
        "t-interval >= 0.99. Speed-ups are the baseline's cumulative cost over the policy's (per seed, then "
        "averaged over seeds and over the budgets after the start); compute counts 3 per sample-gradient and 1 "
        "per forward-only pass. The headline baseline is `reset-tuned`; `reset` keeps the CAL paper's rule.", "",
        *headline_table(results), "",
        *(_section(entry, summary, reports, secs) for entry, summary, reports, secs in results), END,
    ])
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)
