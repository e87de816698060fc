"""Scoring a pool that does not fit in memory: throughput and peak memory, on 1 and more processes.

The benchmark writes a pool of ``--items`` rows of ``--features`` float32 features (random
normal, seeded) as ``.npy`` shards of 100,000 rows under ``--dir`` (outside the repository; 1M x
784 is 3.1 GB, made once), then for each configuration starts fresh processes that load it
with ``calkit.load_dataset`` (memory-mapped: calkit.data.rows) and pick the 1,000 most uncertain
items of the whole pool with the entropy acquisition, exactly the code path of a round:
``StreamedData`` batches through a DataLoader, ``ModelScoringContext`` on one process,
``ShardedScoringContext`` under torchrun (each rank its share, top-k merged).

    python benchmarks/pool_scoring.py                       # 1M x 784, 1 and 2 processes
    python benchmarks/pool_scoring.py --items 200000 --procs 1,2 --workers 0,1   # smaller

Per configuration: seconds to load (open and check every row for NaN), seconds to score and
select, items scored per second, the peak resident memory of the largest process (VmHWM; its
DataLoader workers counted separately, by ru_maxrss, which includes what they share with the
process that forked them), and a hash of the selected ids (every configuration must pick the
same items). The pool's pages sit in the kernel's page cache after it is written (the machine
has the memory for it), so this measures compute and copying, not the disk.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARD_ROWS = 100_000
CLASSES = 10
PICK = 1_000


def make_pool(folder: Path, items: int, features: int) -> None:
    """The pool's shards, written a shard at a time (memory stays at one shard)."""
    marker = folder / "complete.json"
    want = {"items": items, "features": features}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("x-*.npy"):
        old.unlink()
    rng = np.random.default_rng(0)
    for i, start in enumerate(range(0, items, SHARD_ROWS)):
        rows = min(SHARD_ROWS, items - start)
        np.save(folder / f"x-{i:05d}.npy", rng.standard_normal((rows, features), dtype=np.float32))
    (folder / "classes.txt").write_text("\n".join(f"c{i}" for i in range(CLASSES)) + "\n")
    marker.write_text(json.dumps(want))


def child(args: argparse.Namespace) -> None:
    """One process (one rank under torchrun): load, score the whole pool, select; report as JSON."""
    import torch

    from calkit.acquisition import ModelScoringContext, ShardedScoringContext, make_acquisition
    from calkit.data import load_dataset
    from calkit.distributed import init_from_environment, shutdown
    from calkit.models import ModelSpec, build_model
    from calkit.tensors import pool_data

    ranks = init_from_environment("cpu")
    begin = time.perf_counter()
    dataset = load_dataset(args.dir, test_fraction=0, val_fraction=0)
    loaded = time.perf_counter() - begin
    torch.manual_seed(0)
    model = build_model(ModelSpec.parse(args.model), dataset.input_shape, dataset.n_classes).eval()
    data = pool_data(dataset, "cpu", workers=args.loader_workers)
    rng = np.random.default_rng(0)
    if ranks.distributed:
        ctx = ShardedScoringContext(model, data, rng, args.batch, ranks)
    else:
        ctx = ModelScoringContext(model, data, rng, args.batch)
    ranks.barrier()
    begin = time.perf_counter()
    selection = make_acquisition("entropy").select(ctx, dataset.ids, PICK)
    scored = time.perf_counter() - begin
    report = {
        "rank": ranks.rank, "world": ranks.world, "load_s": loaded, "score_s": scored,
        "rss_mb": _peak_rss_mb(), "workers_rss_mb": _peak_mb(resource.RUSAGE_CHILDREN),
        "picked": hashlib.sha256(np.sort(selection.ids).tobytes()).hexdigest()[:12],
        "forward_samples": ctx.job_forward_samples() if ranks.distributed else ctx.forward_samples,
    }
    reports = ranks.gather(report)
    if ranks.is_main:
        Path(args.report).write_text(json.dumps(reports))
    shutdown()


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def _peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM; ru_maxrss would also count the
    launcher's memory from before exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return _peak_mb(resource.RUSAGE_SELF)


def measure(args: argparse.Namespace, procs: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        script = [__file__, "--child", "--dir", str(args.dir), "--report", str(report), "--model", args.model,
                  "--batch", str(args.batch), "--loader-workers", str(workers)]
        if procs == 1:
            cmd = [sys.executable, *script]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
                   *script]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // procs))}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
        ranks = json.loads(report.read_text())
    score_s = max(r["score_s"] for r in ranks)
    return {
        "procs": procs, "workers": workers, "items": args.items, "load_s": max(r["load_s"] for r in ranks),
        "score_s": score_s, "items_per_s": args.items / score_s,
        "rss_mb": max(r["rss_mb"] for r in ranks), "workers_rss_mb": max(r["workers_rss_mb"] for r in ranks),
        "picked": {r["picked"] for r in ranks}.pop(), "forward_samples": ranks[0]["forward_samples"],
    }


def table(rows: list[dict], pool_mb: float) -> str:
    head = ("| processes | loader workers | load s | score+select s | items/s | peak RSS per process MB "
            "| peak RSS per worker MB | RSS / pool | picked |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['procs']} | {r['workers']} | {r['load_s']:.1f} | {r['score_s']:.1f} | "
                     f"{r['items_per_s']:,.0f} | {r['rss_mb']:,.0f} | {_workers_mb(r)} | "
                     f"{r['rss_mb'] / pool_mb:.2f} | {r['picked']} |")
    return "\n".join(lines)


def _workers_mb(row: dict) -> str:
    return f"{row['workers_rss_mb']:,.0f}" if row["workers"] else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--dir", type=Path, default=Path.home() / ".cache" / "calkit" / "bench-pool")
    parser.add_argument("--procs", default="1,2", help="process counts to measure [1,2]")
    parser.add_argument("--workers", default="0,1", help="DataLoader workers per process to measure [0,1]")
    parser.add_argument("--model", default="mlp:512-256", help="the scoring model [mlp:512-256]")
    parser.add_argument("--batch", type=int, default=4096, help="scoring batch size [4096]")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--loader-workers", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.dir = args.dir / f"{args.items}x{args.features}"
    begin = time.perf_counter()
    make_pool(args.dir, args.items, args.features)
    print(f"pool: {args.dir} ({args.items:,} x {args.features} float32, made or found in "
          f"{time.perf_counter() - begin:.0f} s)", flush=True)
    rows = []
    for procs in (int(p) for p in args.procs.split(",")):
        for workers in (int(w) for w in args.workers.split(",")):
            rows.append(measure(args, procs, workers))
            print(f"  {procs} process(es), {workers} worker(s): {rows[-1]['items_per_s']:,.0f} items/s, "
                  f"peak {rows[-1]['rss_mb']:,.0f} MB", flush=True)
    pool_mb = args.items * args.features * 4 / 2**20
    from calkit.machine import machine_info

    print(f"\n{machine_info()}; pool {pool_mb:,.0f} MB on disk; model {args.model}; batch {args.batch}")
    print(table(rows, pool_mb))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine_info(), "pool_mb": pool_mb, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
