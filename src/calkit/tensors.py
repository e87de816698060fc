"""The dataset as tensors on the compute device, gathered by global id.

Moving the arrays once and indexing on the device keeps per-item Python work out of the hot
loops (training steps, pool scoring).
"""

from __future__ import annotations

import numpy as np
import torch

from calkit.data.dataset import Dataset


class DeviceData:
    """Pool, validation and test tensors of one dataset on one device."""

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu"):
        self.dataset = dataset
        self.device = torch.device(device)
        self.x = torch.as_tensor(dataset.x_train, device=self.device)
        self.x_test = None if dataset.x_test is None else torch.as_tensor(dataset.x_test, device=self.device)
        self.y_test = None if dataset.y_test is None else torch.as_tensor(dataset.y_test, device=self.device)
        self.x_val = None if dataset.x_val is None else torch.as_tensor(dataset.x_val, device=self.device)
        self.y_val = None if dataset.y_val is None else torch.as_tensor(dataset.y_val, device=self.device)
        self._labels = torch.full((dataset.pool_size,), -1, dtype=torch.long, device=self.device)

    def features(self, ids: np.ndarray) -> torch.Tensor:
        """Features of the pool items with these global ids, in the given order."""
        return self.x[self._index(ids)]

    def set_labels(self, ids: np.ndarray, labels: np.ndarray) -> None:
        """Record the labels the ledger holds; training reads labels only from here."""
        self._labels[self._index(ids)] = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=self.device)

    def labels(self, ids: np.ndarray) -> torch.Tensor:
        y = self._labels[self._index(ids)]
        if bool((y < 0).any()):
            raise RuntimeError("asked for labels of items that are not labeled yet")
        return y

    def _index(self, ids: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(self.dataset.positions(ids), device=self.device)
