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
from calkit.compare_report import format_headline
from calkit.config import RunConfig
from calkit.errors import CalkitError
from calkit.machine import machine_info

BEGIN, END = "<!-- calkit bench cpu: begin (generated) -->", "<!-- calkit bench cpu: end -->"
ALL_POLICIES = ("reset", "warm", "finetune", "er", "mir", "der", "sd", "sds2", "cal")


@dataclass(frozen=True)
class Entry:
    """One comparison of a suite."""

    name: str
    base: RunConfig
    policies: tuple[str, ...] = ALL_POLICIES
    budgets: tuple[str, ...] = ("10%", "15%", "20%", "25%", "30%")
    max_round_size: int | None = None
    setups: tuple[str, ...] = ("paper", "same")
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def spec(self, seeds: int) -> CompareSpec:
        return CompareSpec(self.base, self.policies, tuple(range(seeds)), self.budgets, self.setups,
                           self.max_round_size)


def _cfg(**kw) -> RunConfig:
    return RunConfig(rounds=1, **kw)


CPU_SUITE = (
    Entry("digits-mlp", _cfg(dataset="digits", model="mlp"), max_round_size=36),
    Entry("fashion-mnist-mlp", _cfg(dataset="fashion-mnist", model="mlp", pool_size=10000), max_round_size=250,
          notes="a fixed 10,000-image subset of the pool (the official test set)"),
    Entry("fashion-mnist-convnet", _cfg(dataset="fashion-mnist", model="convnet", pool_size=4000),
          policies=("reset", "er", "der", "sd", "cal"), max_round_size=200, setups=("paper",),
          notes="a fixed 4,000-image subset; the small ConvNet trains at about 2,000 images/s here"),
    Entry("fine-foods-mlp", _cfg(dataset="fine-foods", model="mlp:256"), max_round_size=100),
    Entry("vader-amazon-mlp", _cfg(dataset="vader-amazon", model="mlp:256"), max_round_size=100),
    Entry("pbmc-mlp", _cfg(dataset="pbmc", model="mlp:256"), max_round_size=14),
)

PAPER_SUITE = (
    Entry("fashion-mnist-resnet18", _cfg(dataset="fashion-mnist", model="resnet18", optimizer="sgd", lr=0.05,
                                         momentum=0.9, weight_decay=5e-4, batch_size=64, replay_size=128,
                                         max_epochs=99),
          max_round_size=1000, notes="the CAL paper's Fashion-MNIST setting"),
)


PUBLISHED = ("report.md", "summary.json", "scatter.png", "learning_curves.png")


def run_bench(
    suite: str, out: Path, benchmarks_md: Path, device: str | None, force: bool, seeds: int,
    publish: Path | None = None,
) -> int:
    """Run a suite; the cpu suite rewrites its BENCHMARKS.md section.

    ``publish`` receives a copy of each entry's report, summary and plots (small files, unlike
    the run directories with their checkpoints), and the section links there instead of ``out``.
    """
    entries = CPU_SUITE if suite == "cpu" else PAPER_SUITE
    device = device or ("cuda" if suite == "paper" else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        if not force:
            raise CalkitError(
                f"the {suite} suite is meant for a GPU and none is available here; on this machine it would take "
                f"about {estimate_cpu_hours(entries[0], seeds):.0f} hours. Pass --device cpu --force to run it anyway"
            )
        device = "cpu"
    started = time.perf_counter()
    sections = []
    for entry in entries:
        spec = dataclasses.replace(entry.spec(seeds), base=dataclasses.replace(entry.base, device=device))
        print(f"== {entry.name} ==", flush=True)
        t0 = time.perf_counter()
        summary = run_compare(spec, out / entry.name)
        print(format_headline(summary), flush=True)
        reports = _publish(out / entry.name, publish / entry.name) if publish else out / entry.name
        sections.append(_section(entry, summary, reports, time.perf_counter() - t0))
    total = time.perf_counter() - started
    if suite == "cpu":
        _write_generated(benchmarks_md, sections, total, seeds, out, publish)
        print(f"{benchmarks_md} updated ({total / 60:.1f} min)")
    return 0


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
    policies = len(entry.policies)
    return seeds * policies * 0.5 * (reset_grads + scoring) * per_sample / 3600


def _publish(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in PUBLISHED:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    return target


def _section(entry: Entry, summary: dict, run_dir: Path, seconds: float) -> str:
    lines = [f"### {entry.name}", "", f"{summary['dataset']}, model `{summary['model']}`, pool "
             f"{summary['pool_size']:,}, budgets {summary['budgets']}, seeds {summary['seeds']}"
             + (f"; {entry.notes}" if entry.notes else "") + f". {seconds / 60:.1f} min.", ""]
    for setup, body in summary["setups"].items():
        lines += [f"Setup `{setup}` (stopping rules: " + "; ".join(
            f"{p}: {r}" for p, r in body["stopping_rules"].items() if p in ("reset", "cal")) + ")", "",
            "| policy | rel. accuracy (mean over budgets) | min | speed-up sample-grads | speed-up train s | end to end |",
            "|---|---:|---:|---:|---:|---:|"]
        for p, data in body["policies"].items():
            b = data["budgets"]
            rel = [x["relative_accuracy"] for x in b]
            lines.append(
                f"| {p} | {np.mean(rel):.4f} | {min(rel):.4f} | {np.mean([x['speedup_sample_gradients'] for x in b]):.2f}x"
                f" | {np.mean([x['speedup_train_seconds'] for x in b]):.2f}x | "
                f"{np.mean([x['speedup_end_to_end'] for x in b]):.2f}x |"
            )
        lines.append("")
    lines += [f"Full tables, forgetting, entropy correlation and plots: `{run_dir}/report.md`.", ""]
    return "\n".join(lines)


def _write_generated(
    path: Path, sections: list[str], seconds: float, seeds: int, out: Path, publish: Path | None
) -> None:
    command = f"calkit bench cpu --seeds {seeds} --out {out}" + (f" --publish {publish}" if publish else "")
    body = "\n".join([
        BEGIN, "## CPU suite (`calkit bench cpu`)", "",
        f"{machine_info()}. Regenerate with `{command}` "
        f"({seconds / 60:.1f} min here). Relative accuracy = policy / reset at each budget; speed-ups = "
        "reset's cumulative cost / the policy's up to the budget, averaged over the budgets.", "",
        *sections, END,
    ])
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)
