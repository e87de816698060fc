"""Throughput of the paper's reference settings, and a short calkit run on them.

ResNet-18 (CIFAR variant) on Fashion-MNIST with SGD (lr 0.05, momentum 0.9, weight decay 5e-4):
training samples per second at the paper's batch sizes (64 for standard AL, 64 + 128 for a CAL
step), pool-scoring samples per second, then two short standard-AL runs through `calkit run`.

    python benchmarks/gpu_reference.py --device cuda --out results.json
    python benchmarks/gpu_reference.py --device cpu --quick      # a smoke test of the script

Prints a table; writes the numbers as JSON when --out is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from calkit import ActiveLoop, RunConfig, load_dataset
from calkit.models import build_model, count_parameters


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(x: torch.Tensor, y: torch.Tensor, batch: int, steps: int, device: torch.device,
                     bf16: bool = False) -> float:
    torch.manual_seed(0)
    model = build_model("resnet18", tuple(x.shape[1:]), 10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator(device="cpu").manual_seed(0)

    def step() -> None:
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(max(3, steps // 10)):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - start)


def score_throughput(x: torch.Tensor, device: torch.device, batch: int = 4096) -> float:
    model = build_model("resnet18", tuple(x.shape[1:]), 10).to(device).eval()
    with torch.inference_mode():
        model(x[:batch])
        sync(device)
        start = time.perf_counter()
        for s in range(0, x.shape[0], batch):
            model(x[s : s + batch])
        sync(device)
    return x.shape[0] / (time.perf_counter() - start)


def short_run(data_dir: str | None, device: str, quick: bool, **rule) -> list[dict]:
    cfg = RunConfig(
        dataset="fashion-mnist", data_dir=data_dir, model="resnet18", policy="reset", acquisition="entropy",
        initial=200 if quick else 1000, round_size=200 if quick else 1000, rounds=2 if quick else 4,
        optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=64, device=device, seed=0, **rule,
    )
    with tempfile.TemporaryDirectory() as tmp:
        loop = ActiveLoop.create(Path(tmp) / "run", cfg)
        loop.run()
        records = loop.ledger.metrics()
        loop.close()
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    device = torch.device(args.device)
    ds = load_dataset("fashion-mnist", args.data_dir)
    x = torch.as_tensor(ds.x_train, device=device)
    y = torch.as_tensor(ds.y_train, device=device)
    steps = 5 if args.quick else 300
    info = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "resnet18_parameters": count_parameters(build_model("resnet18", ds.input_shape, 10)),
    }
    rows = []
    for batch in (64, 192):
        rows.append({"what": f"train fp32, batch {batch}", "samples_per_s": train_throughput(x, y, batch, steps, device)})
        if device.type == "cuda":
            rows.append({"what": f"train bf16 autocast, batch {batch}",
                         "samples_per_s": train_throughput(x, y, batch, steps, device, bf16=True)})
    pool = x if not args.quick else x[:2048]
    rows.append({"what": "score pool fp32, batch 4096", "samples_per_s": score_throughput(pool, device)})
    print(f"{info}")
    print(f"{'measurement':<36}{'samples/s':>12}")
    for r in rows:
        print(f"{r['what']:<36}{r['samples_per_s']:>12,.0f}")
    runs = {
        "fixed 5 epochs": short_run(args.data_dir, args.device, args.quick, epochs=2 if args.quick else 5),
        "99% train accuracy, cap 30": short_run(args.data_dir, args.device, args.quick, train_accuracy=0.99,
                                                max_epochs=2 if args.quick else 30),
    }
    for name, records in runs.items():
        print(f"\ncalkit run, reset + entropy, ResNet-18, stopping rule: {name}")
        print(f"{'round':>5}{'labeled':>9}{'test_acc':>10}{'epochs':>8}{'train_s':>9}{'select_s':>10}{'sample_grads':>14}")
        for r in records:
            print(f"{r['round']:>5}{r['labeled']:>9}{r['test_accuracy']:>10.4f}{r['epochs']:>8}"
                  f"{r['train_seconds']:>9.1f}{r['select_seconds']:>10.2f}{r['sample_gradients']:>14,}")
    if args.out:
        args.out.write_text(json.dumps({"info": info, "throughput": rows, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
