"""Per-step cost of every retraining policy, relative to experience replay (er).

One round shaped like the Fashion-MNIST MLP setting: a synthetic pool of 784 float32 features
and 10 classes (Gaussian blobs), a labeled history of 5,000 items and a new batch of 1,000, model
``mlp`` (784-512-256-10), Adam lr 1e-3, batch m = 64, default policy options, a fixed number of
epochs. Each policy trains from the same freshly seeded weights through ``Trainer.fit``; the
distillation policies (der, sd, sds2) first store targets for the history from those weights.

    python benchmarks/policy_step_cost.py --out policy_step_cost.md
    python benchmarks/policy_step_cost.py --epochs 1 --repeats 1      # a quick check

Per policy: optimizer steps of the round, wall milliseconds per step (the train phase less the
end-of-round target making, divided by the steps; the median over --repeats), sample-gradients
and forward samples per step from the compute meter (also without the end of round), and
milliseconds per step relative to er's. reset and warm sweep all history + new items each epoch,
so they take more steps per epoch than the CAL policies; their per-step cost is comparable.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from calkit.machine import machine_info
from calkit.data import Dataset
from calkit.models import batched_inference, build_model
from calkit.policies import POLICIES, Policy, RoundContext, make_policy
from calkit.policies.base import RoundData
from calkit.tensors import DeviceData
from calkit.train import ComputeMeter, FixedEpochs, OptimizerConfig, Trainer

MODEL = "mlp:512-256"
LR = 1e-3
BATCH = 64
N_FEATURES = 784
N_CLASSES = 10
REFERENCE = "er"


@dataclass(frozen=True)
class Setup:
    """The data of the benchmarked round, on the CPU."""

    data: DeviceData
    rnd: RoundData


@dataclass(frozen=True)
class Sample:
    """One measured round of one policy."""

    steps: int
    train_seconds: float
    sample_gradients: int
    forward_samples: int

    @property
    def seconds_per_step(self) -> float:
        return self.train_seconds / self.steps


@dataclass(frozen=True)
class Row:
    policy: str
    steps: int
    ms_per_step: float
    gradients_per_step: float
    forward_per_step: float
    ratio: float


def make_dataset(n_pool: int, seed: int) -> Dataset:
    """Gaussian blobs in 784 dimensions, one per class, generated in float32."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, size=(N_CLASSES, N_FEATURES)).astype(np.float32)
    y = (np.arange(n_pool) % N_CLASSES).astype(np.int64)
    rng.shuffle(y)
    x = rng.standard_normal((n_pool, N_FEATURES), dtype=np.float32)
    x += centers[y]
    names = tuple(f"c{i}" for i in range(N_CLASSES))
    return Dataset(name="synthetic-784", x_train=x, y_train=y, class_names=names, ids=np.arange(n_pool, dtype=np.int64))


def make_setup(n_pool: int, n_history: int, n_new: int, seed: int) -> Setup:
    if n_history + n_new > n_pool:
        raise SystemExit(f"history ({n_history}) + new ({n_new}) exceed the pool ({n_pool})")
    ds = make_dataset(n_pool, seed)
    order = np.random.default_rng(seed + 1).permutation(ds.ids)
    rnd = RoundData(1, np.sort(order[n_history : n_history + n_new]), np.sort(order[:n_history]))
    data = DeviceData(ds, "cpu")
    labeled = rnd.labeled_ids
    data.set_labels(labeled, ds.y_train[ds.positions(labeled)])
    return Setup(data, rnd)


class EndRoundTimer:
    """Wraps a policy's end_round so its time and forward samples can be taken out of the step cost."""

    def __init__(self, policy: Policy):
        self.seconds = 0.0
        self.forward = 0
        self._inner = policy.end_round
        policy.end_round = self  # type: ignore[method-assign]

    def __call__(self, ctx: RoundContext) -> int:
        start = time.perf_counter()
        n = self._inner(ctx)
        self.seconds += time.perf_counter() - start
        self.forward += n
        return n


def prime_targets(policy: Policy, model: torch.nn.Module, setup: Setup) -> None:
    """Stored targets for the history, as if it had been labeled and trained on in earlier rounds."""
    targets = getattr(policy, "targets", None)
    if targets is not None:
        history = setup.rnd.history_ids
        targets.add(history, batched_inference(model, setup.data.features(history)))


def measure(name: str, setup: Setup, epochs: int, seed: int) -> Sample:
    """Train one round of ``name`` from freshly seeded weights and meter it."""
    policy = make_policy(name)
    torch.manual_seed(seed)
    model = build_model(MODEL, setup.data.dataset.input_shape, N_CLASSES)
    optimizer = OptimizerConfig("adam", LR * policy.lr_multiplier(BATCH)).build(model)
    prime_targets(policy, model, setup)
    timer = EndRoundTimer(policy)
    meter = ComputeMeter()
    trainer = Trainer(setup.data, meter, BATCH)
    fit = trainer.fit(model, optimizer, policy, setup.rnd, FixedEpochs(epochs), np.random.default_rng(seed))
    return Sample(
        fit.steps, meter.seconds["train"] - timer.seconds, meter.sample_gradients, meter.forward_samples - timer.forward
    )


def summarize(name: str, samples: list[Sample], reference_seconds: float) -> Row:
    steps = samples[0].steps
    sec = statistics.median(s.seconds_per_step for s in samples)
    grads = statistics.median(s.sample_gradients / s.steps for s in samples)
    fwd = statistics.median(s.forward_samples / s.steps for s in samples)
    return Row(name, steps, 1000 * sec, grads, fwd, sec / reference_seconds if reference_seconds > 0 else float("nan"))


def run_all(names: list[str], setup: Setup, epochs: int, repeats: int, seed: int) -> list[Row]:
    """Repeats outermost, so slow drift of the machine spreads over every policy alike."""
    measure(REFERENCE, setup, 1, seed)  # warm-up, untimed: torch's one-time initialisation
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            samples[name].append(measure(name, setup, epochs, seed))
    ref = samples.get(REFERENCE) or [measure(REFERENCE, setup, epochs, seed) for _ in range(repeats)]
    ref_seconds = statistics.median(s.seconds_per_step for s in ref)
    return [summarize(name, samples[name], ref_seconds) for name in names]


def describe(args: argparse.Namespace) -> str:
    return (
        f"MLP 784-512-256-10, Adam lr {LR:g}, batch {BATCH}, default policy options, fixed {args.epochs} "
        f"epoch(s); pool {args.pool:,} synthetic items, history {args.history:,}, new batch {args.new:,}; "
        f"median of {args.repeats} repeat(s)."
    )


HEADERS = ("policy", "steps", "ms/step", "grads/step", "fwd/step", f"x {REFERENCE}")


def row_cells(r: Row) -> tuple[str, ...]:
    return (r.policy, f"{r.steps:,}", f"{r.ms_per_step:.2f}", f"{r.gradients_per_step:.1f}",
            f"{r.forward_per_step:.1f}", f"{r.ratio:.2f}")


def text_line(cells: tuple[str, ...]) -> str:
    widths = (10, 7, 10, 12, 10, 8)
    return cells[0].ljust(widths[0]) + "".join(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))


def markdown(info: str, setup_text: str, rows: list[Row], command: str) -> str:
    lines = [
        "## Per-step cost of each policy", "", info, "", "```bash", command, "```", "", setup_text, "",
        "| " + " | ".join(HEADERS) + " |", "|---|" + "---:|" * (len(HEADERS) - 1),
    ]
    lines += ["| " + " | ".join(row_cells(r)) + " |" for r in rows]
    lines += ["", "reset and warm step over every labeled item (history + new) each epoch, the CAL policies "
              "over the new batch only; compare their ms/step, not their steps."]
    return "\n".join(lines) + "\n"


def parse_names(text: str) -> list[str]:
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown policies {unknown}; choose from {', '.join(POLICIES)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2, help="fixed epochs of the round (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="measurements per policy; the median is reported")
    ap.add_argument("--pool", type=int, default=20_000, help="synthetic pool size")
    ap.add_argument("--history", type=int, default=5_000, help="labeled history L_{t-1}")
    ap.add_argument("--new", type=int, default=1_000, help="new batch D_t")
    ap.add_argument("--policies", type=parse_names, default=list(POLICIES), help="comma list (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the table as markdown to this file")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1:
        ap.error("--epochs and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    info = machine_info()
    setup_text = describe(args)
    print(info)
    print(setup_text)
    setup = make_setup(args.pool, args.history, args.new, args.seed)
    rows = run_all(args.policies, setup, args.epochs, args.repeats, args.seed)
    print(text_line(HEADERS))
    for r in rows:
        print(text_line(row_cells(r)))
    if args.out:
        command = "python benchmarks/policy_step_cost.py " + " ".join(sys.argv[1:] if argv is None else argv)
        args.out.write_text(markdown(info, setup_text, rows, command.strip()))


if __name__ == "__main__":
    main()
