"""Run by tests/test_distributed.py under torchrun: every acquisition's pick from one fixed model,
scored by the job's ranks together, for each dataset given (with its DataLoader workers); then a
round of MIR on a ConvNet with dropout and BatchNorm, whose steps and weights must agree on every
rank. Rank 0 writes the picks and every rank's training digest as JSON to the path given.

    torchrun --standalone --nproc-per-node 2 tests/distributed_scoring.py OUT.json DATA:WORKERS:BATCH ...
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from calkit.acquisition import ShardedScoringContext, make_acquisition
from calkit.data import load_dataset
from calkit.distributed import init_from_environment, shutdown
from calkit.models import ModelSpec, build_model
from calkit.tensors import pool_data

STRATEGIES = ("entropy", "margin", "least_confidence", "random", "diverse")
SCORE_BATCH = 64  # small, so the ranks' shares are many batches


def fixed_model(dataset):
    torch.manual_seed(123)
    return build_model(ModelSpec.parse("mlp:32"), dataset.input_shape, dataset.n_classes).eval()


def candidates_of(dataset) -> np.ndarray:
    return dataset.ids[::2]  # not the whole pool, not in one block


def picks(dataset, make_context) -> dict:
    out = {}
    for name in STRATEGIES:
        ctx = make_context(np.random.default_rng(7))
        selection = make_acquisition(name).select(ctx, candidates_of(dataset), 40)
        out[name] = {"ids": selection.ids.tolist(), "scores": np.asarray(selection.scores, dtype=float).tolist()}
    return out


def main() -> None:
    out, sources = sys.argv[1], sys.argv[2:]
    ranks = init_from_environment("cpu")
    result = {}
    for source in sources:
        name, workers, batch = source.rsplit(":", 2)
        dataset = load_dataset(name)
        model = fixed_model(dataset)
        data = pool_data(dataset, "cpu", workers=int(workers))
        result[source] = picks(dataset, lambda rng: ShardedScoringContext(model, data, rng, int(batch), ranks))
    digests = ranks.gather(train_digest())
    if ranks.is_main:
        with open(out, "w") as fh:
            json.dump({"world": ranks.world, "picks": result, "train": digests}, fh)
    shutdown()


def train_digest() -> dict:
    """Train one round of MIR (its step choice draws dropout from torch's stream and reads BatchNorm
    statistics) and digest what this rank chose and ended with."""
    import hashlib

    from calkit.policies import PolicyOptions, make_policy
    from calkit.policies.base import RoundData
    from calkit.tensors import DeviceData
    from calkit.train import ComputeMeter, FixedEpochs, Trainer

    dataset = load_dataset("digits")
    data = DeviceData(dataset)
    ids = dataset.ids[:300]
    data.set_labels(ids, dataset.y_train[:300])
    torch.manual_seed(5)
    model = build_model(ModelSpec.parse("convnet:8-16", dropout=0.3), dataset.input_shape, dataset.n_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    policy = make_policy("mir", PolicyOptions())
    chosen = []
    steps = policy.epoch_steps
    policy.epoch_steps = lambda ctx: (chosen.append(step.ids.tolist()) or step for step in steps(ctx))
    rnd = RoundData(1, new_ids=ids[200:], history_ids=ids[:200])
    Trainer(data, ComputeMeter(), 32).fit(model, optimizer, policy, rnd, FixedEpochs(2), np.random.default_rng(1))
    state = b"".join(t.detach().numpy().tobytes() for t in [*model.parameters(), *model.buffers()])
    return {"steps": hashlib.sha256(json.dumps(chosen).encode()).hexdigest(), "state": hashlib.sha256(state).hexdigest()}


if __name__ == "__main__":
    main()
