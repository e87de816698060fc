"""Load and fault benchmark of `calkit serve`: simulated annotators label a run while the worker trains.

    python benchmarks/serve_load.py --out runs/serve-load            # no fault, then each fault
    python benchmarks/serve_load.py --faults none --annotators 20    # one scenario

For each scenario a fresh run (``--dataset``, people as the oracle, `cal`) is served by a real
`calkit serve` process on 127.0.0.1 (its worker a child process), and ``--annotators`` clients
(asyncio + httpx, in this process) each loop: GET /api/next, think for a moment, POST
/api/labels with the true label and a request id. A client whose request fails for want of a
server retries the same request id until the server is back. It stops by itself when the run is
complete or after ``--max-seconds``.

Faults: ``server`` kill -9s the serving process mid-load and starts it again a second later;
``worker`` kill -9s the training worker while it trains (its supervisor starts a new one,
which resumes from the last checkpoint).

Reported per scenario: latency percentiles of GET /api/next and POST /api/labels (all requests,
and those sent while a round was training), labels per second, the seconds annotators were
told there was no item, and the checks: acknowledged labels missing from the ledger (lost),
items answered by more annotators than they need (duplicates: the overlap share of each round
after the first needs two, the others one), items needing one answer leased to two annotators
at once, and whether the run completed. Latency figures are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from calkit import Run
from calkit.labeling.accounts import Accounts


@dataclass
class Record:
    next_ms: list[tuple[float, float]] = field(default_factory=list)  # (sent at, ms)
    label_ms: list[tuple[float, float]] = field(default_factory=list)
    acked: dict[tuple[int, str], int] = field(default_factory=dict)  # (item, annotator) -> label
    held: dict[int, list[tuple[str, float, float]]] = field(default_factory=dict)  # item -> (who, from, to)
    idle_seconds: float = 0.0
    training: list[list[float]] = field(default_factory=list)  # [start, end] while the worker trained
    errors: dict[str, int] = field(default_factory=dict)


class Server:
    def __init__(self, run_dir: Path, port: int, log: Path, lease_seconds: float):
        self.run_dir, self.port, self.log, self.lease_seconds = run_dir, port, log, lease_seconds
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "calkit", "serve", str(self.run_dir), "--port", str(self.port),
             "--lease-seconds", str(self.lease_seconds)], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        out.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"the server did not start; see {self.log}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)  # the server only; its worker child lives on
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


async def post(client: httpx.AsyncClient, url: str, body: dict, headers: dict, rec: Record) -> httpx.Response:
    """POST, retrying the same request id while the server is away (a fault test kills it)."""
    while True:
        try:
            return await client.post(url, json=body, headers=headers)
        except httpx.TransportError:
            rec.errors["transport"] = rec.errors.get("transport", 0) + 1
            await asyncio.sleep(0.2)


async def annotator(name: str, token: str, base: str, truth: dict[int, int], rec: Record, stop: asyncio.Event,
                    think: tuple[float, float]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(name)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while not stop.is_set():
            sent = time.perf_counter()
            try:
                answer = await client.get("/api/next", headers=headers)
            except httpx.TransportError:
                rec.errors["transport"] = rec.errors.get("transport", 0) + 1
                await asyncio.sleep(0.2)
                continue
            rec.next_ms.append((time.time(), (time.perf_counter() - sent) * 1000))
            if answer.status_code != 200:
                rec.errors[f"next {answer.status_code}"] = rec.errors.get(f"next {answer.status_code}", 0) + 1
                await asyncio.sleep(0.2)
                continue
            body = answer.json()
            item = body["item"]
            if item is None:
                if "complete" in body["why"]:
                    stop.set()
                    return
                wait = 1.0  # a client polls about once a second while there is nothing (the screen: every 3 s)
                await asyncio.sleep(wait)
                rec.idle_seconds += wait
                continue
            got = time.time()
            await asyncio.sleep(rng.uniform(*think))
            label = truth[item["id"]]
            sent = time.perf_counter()
            done = await post(client, "/api/labels", {"item_id": item["id"], "label": label,
                                                      "request_id": f"{name}-{item['id']}"}, headers, rec)
            rec.label_ms.append((time.time(), (time.perf_counter() - sent) * 1000))
            if done.status_code == 200:
                rec.acked[(item["id"], name)] = label
                rec.held.setdefault(item["id"], []).append((name, got, time.time()))
            else:
                key = f"label {done.status_code} {done.json().get('error')}"
                rec.errors[key] = rec.errors.get(key, 0) + 1


async def watch_training(run_dir: Path, rec: Record, stop: asyncio.Event) -> None:
    """Intervals in which the worker said it was training (from worker.json)."""
    path = run_dir / "serve" / "worker.json"
    training = False
    while not stop.is_set():
        try:
            state = json.loads(path.read_text()).get("state")
        except (OSError, ValueError):
            state = None
        now = time.time()
        if state == "training" and not training:
            rec.training.append([now, now])
        if state == "training":
            rec.training[-1][1] = now
        training = state == "training"
        await asyncio.sleep(0.05)


async def inject(fault: str, server: Server, run_dir: Path, rec: Record, stop: asyncio.Event, log) -> None:
    """Wait for the second round to train, then kill the server or the worker."""
    while not stop.is_set() and len(rec.training) < 2:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    if stop.is_set():
        return
    if fault == "server":
        server.kill()
        log(f"  killed the server (kill -9) at {len(rec.acked)} acknowledged labels")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(server.start)
        log("  started it again")
    elif fault == "worker":
        pid = json.loads((run_dir / "serve" / "worker.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        log(f"  killed the worker {pid} (kill -9) while it trained")


def double_leases(rec: Record, needed: dict[int, int]) -> int:
    """Items needing one answer that two annotators held over overlapping intervals (from lease
    to acknowledgement)."""
    count = 0
    for item, spans in rec.held.items():
        if needed.get(item, 1) > 1:
            continue
        spans = sorted(spans, key=lambda s: s[1])
        count += sum(1 for a, b in zip(spans, spans[1:]) if a[0] != b[0] and b[1] < a[2])
    return count


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def during_training(samples: list[tuple[float, float]], intervals: list[list[float]]) -> list[float]:
    return [ms for at, ms in samples if any(a <= at <= b for a, b in intervals)]


def scenario(fault: str, args, root: Path, log) -> dict:
    run_dir = root / f"run-{fault}"
    with Run.create(run_dir, dataset=args.dataset, oracle="people", policy="cal", initial=args.initial,
                    round_size=args.round_size, rounds=args.rounds, seed=0, model=args.model,
                    pool_size=args.pool_size, lookahead=args.lookahead) as run:
        ds = run.dataset
        truth = {int(i): int(y) for i, y in zip(ds.ids, ds.y_train)}
        accounts = Accounts(run._ledger)
        tokens = {f"a{k:02d}": accounts.add(f"a{k:02d}") for k in range(args.annotators)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Server(run_dir, port, root / f"serve-{fault}.log", args.lease_seconds)
    server.start()
    rec = Record()
    begin = time.time()

    async def main() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(annotator(n, t, f"http://127.0.0.1:{port}", truth, rec, stop, args.think))
                 for n, t in tokens.items()]
        tasks.append(asyncio.create_task(watch_training(run_dir, rec, stop)))
        if fault != "none":
            tasks.append(asyncio.create_task(inject(fault, server, run_dir, rec, stop, log)))
        deadline = time.monotonic() + args.max_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(main())
        seconds = time.time() - begin
        deadline = time.monotonic() + 120  # let the last round's training finish
        while time.monotonic() < deadline:
            with Run.open(run_dir) as run:
                if run.status().complete:
                    break
            time.sleep(0.5)
    finally:
        server.stop()
        subprocess.run(["pkill", "-f", f"calkit worker {run_dir}"], check=False)
    with Run.open(run_dir) as run:
        facts = run._ledger.label_facts()
        complete = run.status().complete
        trained = len(run.metrics())
        needed = dict(run._ledger._conn.execute("SELECT item_id, needed FROM query_items").fetchall())
    stored = {(f["item_id"], f["annotator"], f["label"]) for f in facts}
    lost = sum(1 for (item, who), label in rec.acked.items() if (item, who, label) not in stored)
    per_item: dict[int, set[str]] = {}
    for f in facts:
        per_item.setdefault(f["item_id"], set()).add(f["annotator"])
    next_all, label_all = [ms for _, ms in rec.next_ms], [ms for _, ms in rec.label_ms]
    next_train, label_train = during_training(rec.next_ms, rec.training), during_training(rec.label_ms, rec.training)
    return {
        "fault": fault + (" (lookahead)" if args.lookahead else ""), "annotators": args.annotators, "labels": len(rec.acked), "seconds": seconds,
        "labels_per_second": len(rec.acked) / seconds, "rounds_trained": trained, "complete": complete,
        "next_p50": percentile(next_all, 50), "next_p95": percentile(next_all, 95),
        "next_p95_training": percentile(next_train, 95), "next_training_n": len(next_train),
        "label_p50": percentile(label_all, 50), "label_p95": percentile(label_all, 95),
        "label_p95_training": percentile(label_train, 95), "label_training_n": len(label_train),
        "idle_seconds": rec.idle_seconds, "training_seconds": sum(b - a for a, b in rec.training),
        "lost": lost, "duplicates": sum(1 for item, who in per_item.items() if len(who) > needed.get(item, 1)),
        "double_leases": double_leases(rec, needed), "errors": rec.errors,
        "overlap_items": sum(1 for n in needed.values() if n > 1),
    }


def table(rows: list[dict]) -> str:
    lines = ["| fault | annotators | labels | labels/s | GET /api/next p50 / p95 ms (while training) | "
             "POST /api/labels p50 / p95 ms (while training) | s with no item (all annotators) | s training | "
             "lost | duplicates | leased to two | run complete |",
             "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['fault']} | {r['annotators']} | {r['labels']} | {r['labels_per_second']:.1f} | "
            f"{r['next_p50']:.1f} / {r['next_p95']:.1f} ({r['next_p95_training']:.1f}, n={r['next_training_n']}) | "
            f"{r['label_p50']:.1f} / {r['label_p95']:.1f} ({r['label_p95_training']:.1f}, n={r['label_training_n']}) | "
            f"{r['idle_seconds']:.0f} | {r['training_seconds']:.1f} | {r['lost']} | {r['duplicates']} | "
            f"{r['double_leases']} | {'yes' if r['complete'] else '**no**'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for the runs, logs and results.json [a temporary one]")
    parser.add_argument("--faults", default="none,server,worker", help="comma list of none, server, worker")
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--pool-size", type=int, default=10000)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--initial", type=int, default=200)
    parser.add_argument("--round-size", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lease-seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"),
                        help="seconds an annotator looks at an item before answering [0.5 1.5]")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--lookahead", action="store_true", help="runs with lookahead (the next query opens while "
                        "a round trains)")
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="calkit-load-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for fault in args.faults.split(","):
        print(f"scenario {fault}: {args.annotators} annotators, {args.dataset}, rounds of {args.round_size}",
              file=sys.stderr, flush=True)
        rows.append(scenario(fault, args, root, lambda line: print(line, file=sys.stderr, flush=True)))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    (root / "results.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))
    failed = [r["fault"] for r in rows if r["lost"] or r["duplicates"] or r["double_leases"] or not r["complete"]]
    if failed:
        print(f"checks failed in: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
