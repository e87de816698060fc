"""`calkit report`: a run's learning curve as a table and a PNG, with the compute behind it."""

from __future__ import annotations

import json
from pathlib import Path

from calkit.errors import CalkitError, LedgerError
from calkit.progress import format_header, format_row


def read_metrics(run_dir: Path) -> list[dict]:
    """A run's per-round records from its metrics.jsonl, in round order.

    The one reader of that file (report, compare, benchmarks), so a missing file is the same clear
    error everywhere and a blank line never breaks an analysis.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        if not (Path(run_dir) / "ledger.sqlite").exists():
            raise LedgerError(f"{run_dir} is not a calkit run directory (no ledger.sqlite)")
        raise LedgerError(f"{run_dir} has no metrics.jsonl yet: no round has finished training")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def format_table(records: list[dict]) -> str:
    holdout = any(r.get("holdout_accuracy") is not None for r in records)
    lines = [format_header(holdout)] + [format_row(r, holdout) for r in records]
    if records:
        last = records[-1]
        lines.append(f"initial round: {records[0].get('stop_rule')}")
        lines.append(
            f"policy {last.get('policy')}, acquisition {last.get('acquisition')}, stopping rule: {last.get('stop_rule')}"
        )
        compute = last.get("compute")
        lines.append(
            f"compute so far: {last['optimizer_steps']:,} optimizer steps, {last['sample_gradients']:,} sample-gradients, "
            + ("" if compute is None else f"{compute:,} forward-pass equivalents, ")
            + f"{last['train_seconds']:.1f} s training, {last['select_seconds']:.1f} s acquisition"
        )
    return "\n".join(lines)


def forecast_line(records: list[dict], extra: int = 1000, stop_below: float | None = None) -> str:
    """What the next ``extra`` labels are worth by the learning-curve fit (calkit.learning_curve),
    read on the validation split where the run has one."""
    from calkit.learning_curve import MIN_POINTS, curve_points, fit_learning_curve

    split, labels, accuracy = curve_points(records)
    fit = fit_learning_curve(labels, accuracy)
    if fit is None:
        return f"learning curve: {len(labels)} trained rounds with an accuracy; a forecast needs {MIN_POINTS}"
    name = {"val": "validation", "holdout": "held-out, labeled by people", "test": "test"}[split]
    return f"learning curve ({name} accuracy): {fit.describe(extra, stop_below)}"


def plot_learning_curve(records: list[dict], out: Path, title: str = "") -> Path:
    """Test (and validation, where the run has it) accuracy against labeled items; needs the optional
    matplotlib (calkit[plot])."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CalkitError("plotting needs matplotlib: pip install 'calkit[plot]'") from exc
    curves = [(name, [(r["labeled"], r[f"{split}_accuracy"]) for r in records if r.get(f"{split}_accuracy") is not None])
              for split, name in (("test", "test"), ("val", "validation"), ("holdout", "held-out (people's labels)"))]
    curves = [(name, points) for name, points in curves if points]
    if not curves:
        raise CalkitError("no accuracy to plot: the run has no test or validation split, and no held-out items "
                          "labeled by people")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for (name, points), marker, style in zip(curves, "osd", ("-", "--", ":")):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, ls=style, label=name)
    if len(curves) > 1:
        ax.legend()
    ax.set_xlabel("labeled items")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "learning curve")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
