"""Test-set metrics for one model."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score
from torch import nn

from calkit.models import batched_inference
from calkit.tensors import DeviceData


def evaluate(model: nn.Module, data: DeviceData, batch_size: int = 4096) -> dict[str, float | None]:
    """Accuracy and macro-F1 on the test split (None for both when there is no test split)."""
    if data.x_test is None or data.y_test is None:
        return {"test_accuracy": None, "test_macro_f1": None}
    pred = batched_inference(model, data.x_test, batch_size).argmax(1).cpu().numpy()
    true = data.y_test.cpu().numpy()
    labels = np.arange(data.dataset.n_classes)
    return {
        "test_accuracy": float((pred == true).mean()),
        "test_macro_f1": float(f1_score(true, pred, labels=labels, average="macro", zero_division=0)),
    }
