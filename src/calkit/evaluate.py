"""Test- and validation-set metrics for one model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from calkit.entropy import predictive_entropy
from calkit.models import batched_inference
from calkit.tensors import PoolData


@dataclass(frozen=True)
class Evaluation:
    """Test metrics, plus each test item's predictive entropy.

    The entropies come from the same forward pass; keeping them with the round lets analyses
    (the entropy correlation of `calkit compare`) skip reloading every model.
    """

    scores: dict[str, float | None]
    entropy: np.ndarray | None


def evaluate(model: nn.Module, data: PoolData, batch_size: int = 4096,
             holdout: dict[int, int] | None = None) -> Evaluation:
    """Accuracy and macro-F1 on the test and validation splits (None where the data has no such split).

    Validation numbers are for choosing settings; test numbers for reporting them. ``holdout``:
    pool items set aside as a validation set that people label, with their agreed labels so far
    (``holdout_accuracy`` and ``holdout_labels``, the count measured on).
    """
    scores: dict[str, float | None] = {}
    test_logits = None
    for split in ("test", "val"):
        y = data.split_labels(split)
        if y is None:
            scores.update({f"{split}_accuracy": None, f"{split}_macro_f1": None})
            continue
        logits = batched_inference(model, data.split_batches(split, batch_size))
        scores.update(_split_scores(split, logits, y, data.dataset.n_classes))
        if split == "test":
            test_logits = logits
    if holdout is not None:
        scores.update(_holdout_scores(model, data, holdout, batch_size))
    return Evaluation(scores, None if test_logits is None else predictive_entropy(test_logits))


def _holdout_scores(model: nn.Module, data: PoolData, holdout: dict[int, int], batch_size: int) -> dict:
    if not holdout:
        return {"holdout_accuracy": None, "holdout_macro_f1": None, "holdout_labels": 0}
    ids = np.array(sorted(holdout), dtype=np.int64)
    logits = batched_inference(model, data.batches(ids, batch_size))
    truth = torch.as_tensor([holdout[int(i)] for i in ids], device=logits.device)
    return {**_split_scores("holdout", logits, truth, data.dataset.n_classes), "holdout_labels": len(ids)}


def _split_scores(split: str, logits: torch.Tensor, y: torch.Tensor, n_classes: int) -> dict[str, float]:
    pred = logits.argmax(1).cpu().numpy()
    true = y.cpu().numpy()
    return {
        f"{split}_accuracy": float((pred == true).mean()),
        f"{split}_macro_f1": float(f1_score(true, pred, labels=np.arange(n_classes), average="macro", zero_division=0)),
    }


def accuracy_by_round(model: nn.Module, data: PoolData, per_round: list[np.ndarray], batch_size: int) -> list[float]:
    """Training accuracy on each round's items: forgetting shows as a falling curve."""
    ids = np.concatenate(per_round)
    pred = batched_inference(model, data.batches(ids, batch_size)).argmax(1)
    hits = (pred == data.labels(ids)).cpu().numpy()
    bounds = np.cumsum([0] + [len(p) for p in per_round])
    return [float(hits[a:b].mean()) for a, b in zip(bounds[:-1], bounds[1:])]
