"""Test-set metrics for one model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from calkit.models import batched_inference
from calkit.tensors import DeviceData


@dataclass(frozen=True)
class Evaluation:
    """Test metrics, plus each test item's predictive entropy.

    The entropies come from the same forward pass; keeping them with the round lets analyses
    (the entropy correlation of `calkit compare`) skip reloading every model.
    """

    scores: dict[str, float | None]
    entropy: np.ndarray | None


def predictive_entropy(logits: torch.Tensor) -> np.ndarray:
    p = torch.softmax(logits.float(), dim=1)
    return (-(p * torch.log(p.clamp_min(1e-12))).sum(1)).cpu().numpy().astype(np.float32)


def evaluate(model: nn.Module, data: DeviceData, batch_size: int = 4096) -> Evaluation:
    """Accuracy and macro-F1 on the test split (None for both when there is no test split)."""
    if data.x_test is None or data.y_test is None:
        return Evaluation({"test_accuracy": None, "test_macro_f1": None}, None)
    logits = batched_inference(model, data.x_test, batch_size)
    pred = logits.argmax(1).cpu().numpy()
    true = data.y_test.cpu().numpy()
    labels = np.arange(data.dataset.n_classes)
    scores = {
        "test_accuracy": float((pred == true).mean()),
        "test_macro_f1": float(f1_score(true, pred, labels=labels, average="macro", zero_division=0)),
    }
    return Evaluation(scores, predictive_entropy(logits))
