"""Run by tests/test_distributed.py under torchrun: every acquisition's pick from one fixed model,
scored by the job's ranks together, for each dataset given (with its DataLoader workers); rank 0
writes the picks as JSON to the path given.

    torchrun --standalone --nproc-per-node 2 tests/distributed_scoring.py OUT.json DATA:WORKERS ...
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
        name, workers = source.rsplit(":", 1)
        dataset = load_dataset(name)
        model = fixed_model(dataset)
        data = pool_data(dataset, "cpu", workers=int(workers))
        result[name] = picks(dataset, lambda rng: ShardedScoringContext(model, data, rng, SCORE_BATCH, ranks))
    if ranks.is_main:
        with open(out, "w") as fh:
            json.dump({"world": ranks.world, "picks": result}, fh)
    shutdown()


if __name__ == "__main__":
    main()
