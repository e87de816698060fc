"""Time and peak memory of ``calkit.submodular.greedy_maximize`` as the candidate set grows.

The setting of diversity-aware acquisition: n candidates with 128-dimensional float32
embeddings (a seeded Gaussian mixture of 50 clusters), entropy-like utilities in [0, log 10]
and lam = n (``diverse`` uses lam * n with lam = 1). Every (n, k) pair runs in a fresh Python
process, so each peak resident set size (``ru_maxrss``) belongs to one call only.

    python benchmarks/submodular_bench.py --out submodular.md
    python benchmarks/submodular_bench.py --sizes 1000,2000 --ks 10,100      # a quick check

Columns: wall seconds of the greedy_maximize call; the process's peak RSS in MiB; the peak's
increase over the peak just before the call (after imports, data generation and one tiny
warm-up call that keeps torch's one-time initialisation out of both numbers); and the share
of the call spent on the median-heuristic kernel width (timed separately, after the call, on a
fresh generator with the same seed, so it does not touch the peak).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from calkit.machine import machine_info

DEFAULT_SIZES = (1000, 5000, 10000, 50000, 100000)
DEFAULT_KS = (10, 100, 1000)
DIM = 128
CLUSTERS = 50
N_CLASSES = 10
CHUNK = 8192


@dataclass(frozen=True)
class Measurement:
    n: int
    k: int
    seconds: float
    peak_mib: float
    extra_mib: float
    sigma_seconds: float

    @property
    def sigma_share(self) -> float:
        return self.sigma_seconds / self.seconds if self.seconds > 0 else 0.0


def parse_ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_embeddings(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian mixture in float32, filled chunk by chunk so no large float64 temporary appears."""
    centers = rng.normal(0.0, 4.0, size=(CLUSTERS, DIM)).astype(np.float32)
    x = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        labels = rng.integers(0, CLUSTERS, size=stop - start)
        x[start:stop] = rng.standard_normal((stop - start, DIM), dtype=np.float32)
        x[start:stop] += centers[labels]
    return x


def make_utilities(n: int, rng: np.random.Generator) -> np.ndarray:
    """Entropy-like scores in [0, log 10], skewed the way predictive entropies of a trained model are."""
    return np.log(N_CLASSES) * rng.beta(2.0, 5.0, size=n)


def warm_up(greedy_maximize) -> None:
    """One tiny call first, so torch's one-time initialisation is in neither the time nor the extra memory."""
    rng = np.random.default_rng(12345)
    greedy_maximize(make_embeddings(64, rng), 4, rng, make_utilities(64, rng), lam=64.0)


def measure_one(n: int, k: int, seed: int) -> Measurement:
    """One greedy_maximize call in this process (meant to be a fresh one)."""
    from calkit.submodular import greedy_maximize, median_heuristic

    data_rng = np.random.default_rng(seed)
    emb = make_embeddings(n, data_rng)
    h = make_utilities(n, data_rng)
    warm_up(greedy_maximize)
    gc.collect()
    baseline = peak_rss_mib()
    start = time.perf_counter()
    greedy_maximize(emb, k, np.random.default_rng(seed + 1), h, lam=float(n))
    seconds = time.perf_counter() - start
    peak = peak_rss_mib()
    start = time.perf_counter()
    median_heuristic(emb, np.random.default_rng(seed + 1))
    sigma_seconds = time.perf_counter() - start
    return Measurement(n, k, seconds, peak, peak - baseline, sigma_seconds)


def run_child(n: int, k: int, seed: int) -> Measurement:
    """Measure (n, k) in a fresh interpreter running this script's hidden ``--one`` mode."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(n), str(k), "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement n={n} k={k} failed:\n{proc.stderr}")
    return Measurement(**json.loads(proc.stdout.strip().splitlines()[-1]))


HEADERS = ("n", "k", "seconds", "peak MiB", "extra MiB", "sigma share")


def row_cells(m: Measurement) -> tuple[str, ...]:
    return (f"{m.n:,}", f"{m.k:,}", f"{m.seconds:.3f}", f"{m.peak_mib:.0f}", f"{m.extra_mib:.0f}",
            f"{100 * m.sigma_share:.1f} %")


def text_line(cells: tuple[str, ...]) -> str:
    widths = (9, 6, 10, 10, 11, 13)
    return "".join(c.rjust(w) for c, w in zip(cells, widths))


def markdown(info: str, rows: list[Measurement], command: str) -> str:
    lines = [
        "## greedy_maximize: time and peak memory", "", info, "", "```bash", command, "```", "",
        f"{DIM}-d float32 embeddings ({CLUSTERS}-cluster Gaussian mixture), entropy-like utilities "
        f"in [0, log {N_CLASSES}], lam = n; one fresh process per row.", "",
        "| " + " | ".join(HEADERS) + " |", "|" + "---:|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(row_cells(m)) + " |" for m in rows]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=parse_ints, default=list(DEFAULT_SIZES), help="candidate counts n, comma list")
    ap.add_argument("--ks", type=parse_ints, default=list(DEFAULT_KS), help="selection sizes k, comma list")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the table as markdown to this file")
    ap.add_argument("--one", type=int, nargs=2, metavar=("N", "K"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one:
        print(json.dumps(asdict(measure_one(args.one[0], args.one[1], args.seed))))
        return
    info = machine_info()
    print(info)
    print(text_line(HEADERS))
    rows = []
    for n in args.sizes:
        for k in (k for k in args.ks if k <= n):
            rows.append(run_child(n, k, args.seed))
            print(text_line(row_cells(rows[-1])), flush=True)
    if args.out:
        command = "python benchmarks/submodular_bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
        args.out.write_text(markdown(info, rows, command.strip()))


if __name__ == "__main__":
    main()
