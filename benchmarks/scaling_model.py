"""A cost model of one active-learning round on a very large pool, from measured per-item costs.

Nothing here runs a model: it combines per-item costs measured by other benchmarks with the shape
of a round, and prints how long scoring and training take against the number of GPUs, and which
part bounds the round. Measured inputs (defaults, each with its source):

- one NVIDIA H200, ResNet-18 on 784-feature images (BENCHMARKS.md "Reference settings on a GPU",
  benchmarks/results/gpu_reference_h200_2026-11-28.json): scoring 103,279 items/s (batch 4,096);
  training 6,953 samples/s at batch 64 and 17,012 at batch 192 (the paper's CAL step, 64 + 128;
  calkit's `cal` replays m' = m, a step of 64 + 64).
  The two training points give a step time of a + c * batch: a fixed per-step cost and a
  per-sample one, which is what splitting a step over GPUs can shrink.

Assumptions (not measured here; flags change them): the disk read bandwidth per machine, the
all-reduce bandwidth within a machine (NVLink) and between machines, 8 GPUs per machine.

    python benchmarks/scaling_model.py                        # a billion items, the H200 constants
    python benchmarks/scaling_model.py --score-multiple 100   # score a 100 x round-size random subset
    python benchmarks/scaling_model.py --device cpu           # this machine's measured constants
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Device:
    name: str
    score_rate: float  #: items scored per second by one device
    step_fixed_s: float  #: per-step cost that does not depend on the batch (launch, optimizer)
    step_per_sample_s: float  #: per-sample cost of a training step
    parameters: int  #: gradients all-reduced per step
    source: str


def h200() -> Device:
    ref = json.loads((RESULTS / "gpu_reference_h200_2026-11-28.json").read_text())
    rate = {row["what"]: row["samples_per_s"] for row in ref["throughput"]}
    t64, t192 = 64 / rate["train fp32, batch 64"], 192 / rate["train fp32, batch 192"]
    per_sample = (t192 - t64) / 128
    return Device("one H200, ResNet-18", rate["score pool fp32, batch 4096"], t64 - 64 * per_sample, per_sample,
                  ref["info"]["resnet18_parameters"], "benchmarks/results/gpu_reference_h200_2026-11-28.json")


def this_cpu() -> Device:
    """This 2-core machine as one 'device': scoring from pool_scoring's 1-process row, a CAL step
    of the MLP from BENCHMARKS.md 'Per-step cost of each policy' (sd: 4.28 ms per 190.5 samples,
    reset: 2.06 ms per 63.8)."""
    rows = json.loads((RESULTS / "pool_scoring_2026-11-30.json").read_text())["rows"]
    score = max(r["items_per_s"] for r in rows if r["procs"] == 1)
    per_sample = (4.28e-3 - 2.06e-3) / (190.5 - 63.8)
    return Device("this CPU (2 cores), MLP 784-512-256-10", score, 2.06e-3 - 63.8 * per_sample, per_sample,
                  784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10,
                  "benchmarks/results/pool_scoring_2026-11-30.json, BENCHMARKS.md per-step costs")


@dataclass(frozen=True)
class Round:
    pool: int
    round_size: int
    labeled: int
    feature_bytes: int
    score_multiple: int | None
    cal_passes: float  #: cal's rule: ceil(passes x labeled / new) epochs over the new items
    new_per_step: int
    replay_per_step: int
    reset_epochs: int  #: epochs a from-scratch retrain takes over the labeled set

    @property
    def candidates(self) -> int:
        unlabeled = self.pool - self.labeled
        return unlabeled if self.score_multiple is None else min(unlabeled, self.score_multiple * self.round_size)

    @property
    def cal_steps(self) -> int:
        """cal's rule: ceil(passes x labeled / new) epochs over the new items, the labeled set
        counted with the round's new items."""
        epochs = math.ceil(self.cal_passes * (self.labeled + self.round_size) / self.round_size)
        return max(40, epochs * math.ceil(self.round_size / self.new_per_step))

    @property
    def reset_steps(self) -> int:
        return self.reset_epochs * math.ceil((self.labeled + self.round_size) / self.new_per_step)


@dataclass(frozen=True)
class Cluster:
    gpus: int
    per_node: int
    read_gb_s: float  #: disk read bandwidth per machine
    nvlink_gb_s: float  #: all-reduce bus bandwidth within a machine
    network_gb_s: float  #: all-reduce bus bandwidth between machines

    @property
    def nodes(self) -> int:
        return math.ceil(self.gpus / self.per_node)

    def allreduce_s(self, parameters: int) -> float:
        """Ring all-reduce of fp32 gradients: 2 (G-1)/G of the bytes over the slowest link."""
        if self.gpus == 1:
            return 0.0
        bandwidth = self.nvlink_gb_s if self.nodes == 1 else self.network_gb_s
        return 2 * (self.gpus - 1) / self.gpus * parameters * 4 / (bandwidth * 1e9)


def step_s(device: Device, cluster: Cluster, batch: int) -> float:
    """One data-parallel step: the fixed cost, each GPU's share of the samples, the all-reduce."""
    share = math.ceil(batch / cluster.gpus)
    return device.step_fixed_s + share * device.step_per_sample_s + cluster.allreduce_s(device.parameters)


def estimate(device: Device, rnd: Round, cluster: Cluster) -> dict:
    compute = rnd.candidates / (device.score_rate * cluster.gpus)
    read = rnd.candidates * rnd.feature_bytes / (cluster.read_gb_s * 1e9 * cluster.nodes)
    scoring = max(compute, read)  # DataLoader workers read while the devices compute
    cal = rnd.cal_steps * step_s(device, cluster, rnd.new_per_step + rnd.replay_per_step)
    reset = rnd.reset_steps * step_s(device, cluster, rnd.new_per_step)
    parts = {"scoring: compute": compute, "scoring: disk": read, "training": cal}
    return {"gpus": cluster.gpus, "nodes": cluster.nodes, "compute": compute, "read": read, "scoring": scoring,
            "cal": cal, "reset": reset, "round": scoring + cal, "bound": max(parts, key=parts.get)}


def human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def table(rows: list[dict]) -> str:
    lines = ["| devices | machines | scoring compute | disk read | scoring | cal training | reset training "
             "| cal round | bounded by |", "|" + "---:|" * 8 + "---|"]
    for r in rows:
        lines.append(f"| {r['gpus']} | {r['nodes']} | {human(r['compute'])} | {human(r['read'])} | "
                     f"{human(r['scoring'])} | {human(r['cal'])} | {human(r['reset'])} | {human(r['round'])} | "
                     f"{r['bound']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("h200", "cpu"), default="h200")
    parser.add_argument("--pool", type=float, default=1e9)
    parser.add_argument("--round-size", type=int, default=10_000)
    parser.add_argument("--labeled", type=int, default=100_000, help="labeled items before the round [100,000]")
    parser.add_argument("--feature-bytes", type=int, default=784 * 4, help="bytes per item on disk [3,136: 784 float32]")
    parser.add_argument("--score-multiple", type=int, help="score this many times the round size [the whole pool]")
    parser.add_argument("--gpus", default="1,8,64,512")
    parser.add_argument("--per-node", type=int, default=8, help="GPUs per machine [8] (assumed)")
    parser.add_argument("--read-gb-s", type=float, default=2.0, help="disk read GB/s per machine [2] (assumed)")
    parser.add_argument("--nvlink-gb-s", type=float, default=200.0, help="all-reduce GB/s in a machine [200] (assumed)")
    parser.add_argument("--network-gb-s", type=float, default=25.0, help="all-reduce GB/s between machines [25] (assumed)")
    parser.add_argument("--reset-epochs", type=int, default=10, help="epochs of a from-scratch retrain [10]")
    args = parser.parse_args()
    device = h200() if args.device == "h200" else this_cpu()
    rnd = Round(int(args.pool), args.round_size, args.labeled, args.feature_bytes, args.score_multiple,
                cal_passes=2.0, new_per_step=64, replay_per_step=64, reset_epochs=args.reset_epochs)
    rows = [estimate(device, rnd, Cluster(int(g), args.per_node if args.device == "h200" else 1, args.read_gb_s,
                                          args.nvlink_gb_s, args.network_gb_s))
            for g in args.gpus.split(",")]
    print(f"{device.name}: scores {device.score_rate:,.0f} items/s; a training step takes "
          f"{device.step_fixed_s * 1e3:.2f} ms + {device.step_per_sample_s * 1e6:.1f} us per sample "
          f"({device.source})")
    print(f"round: {rnd.candidates:,} candidates of {rnd.feature_bytes:,} bytes, {rnd.round_size:,} new, "
          f"{rnd.labeled:,} labeled before it; cal {rnd.cal_steps:,} steps of 64 + 64 (m' = m), reset "
          f"{rnd.reset_steps:,} steps of 64; "
          f"disk {args.read_gb_s:g} GB/s per machine, all-reduce {args.nvlink_gb_s:g} GB/s in a machine and "
          f"{args.network_gb_s:g} GB/s between machines (assumed)\n")
    print(table(rows))


if __name__ == "__main__":
    main()
