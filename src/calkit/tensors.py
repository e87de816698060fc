"""The dataset as the compute device sees it: features by global id, a batch at a time.

Two placements, one interface (:class:`PoolData`):

- :class:`DeviceData` moves every split to the device once and indexes there, which keeps
  per-item Python work out of the hot loops (training steps, pool scoring). The default.
- :class:`StreamedData` leaves the features where they are (host memory, or ``.npy`` files on
  disk, :class:`calkit.data.rows.RowStore`) and moves each batch to the device when it is
  needed: scoring and evaluation stream through a ``torch.utils.data.DataLoader`` (worker
  processes read ahead, pinned memory on CUDA), training reads each step's rows by id. For pools
  larger than the device's or the machine's memory; used whenever the pool is on disk.

Both give the same batches in the same order, so a run's numbers do not depend on the placement.
Labels are small and always live on the device. ``augment`` is applied to training batches only
(never to scoring or evaluation), on the device, after the batch is gathered.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from calkit.data.dataset import Dataset, Features
from calkit.data.rows import RowStore
from calkit.memory import map_large_blocks

Augment = Callable[[torch.Tensor], torch.Tensor]
SPLITS = ("test", "val")


class PoolData(ABC):
    """Pool, validation and test data of one dataset for one device."""

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu", augment: Augment | None = None):
        self.dataset = dataset
        self.device = torch.device(device)
        self.augment = augment
        self._labels = torch.full((dataset.pool_size,), -1, dtype=torch.long, device=self.device)
        self._split_labels = {
            split: None if y is None else torch.as_tensor(y, device=self.device)
            for split, y in (("test", dataset.y_test), ("val", dataset.y_val))
        }

    # -- features ---------------------------------------------------------------------------
    @abstractmethod
    def features(self, ids: np.ndarray) -> torch.Tensor:
        """Features of the pool items with these global ids, in the given order, on the device."""

    @abstractmethod
    def batches(self, ids: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
        """The features of these pool items, in order, ``batch_size`` rows at a time: for scoring."""

    @abstractmethod
    def split_batches(self, split: str, batch_size: int) -> Iterator[torch.Tensor]:
        """The features of the ``test`` or ``val`` split, in order, a batch at a time."""

    def train_features(self, ids: np.ndarray) -> torch.Tensor:
        """A training batch: :meth:`features` with the augmentation hook applied."""
        x = self.features(ids)
        return x if self.augment is None else self.augment(x)

    # -- labels -----------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return self._split_labels[split] is not None

    def split_labels(self, split: str) -> torch.Tensor | None:
        return self._split_labels[split]

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


class DeviceData(PoolData):
    """Every split on the device, gathered there by id."""

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu", augment: Augment | None = None):
        super().__init__(dataset, device, augment)
        self.x = torch.as_tensor(np.asarray(dataset.x_train), device=self.device)
        self._split_x = {split: None if x is None else torch.as_tensor(np.asarray(x), device=self.device)
                         for split, x in (("test", dataset.x_test), ("val", dataset.x_val))}

    def features(self, ids: np.ndarray) -> torch.Tensor:
        return self.x[self._index(ids)]

    def batches(self, ids: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
        index = self._index(ids)
        for start in range(0, len(index), batch_size):
            yield self.x[index[start : start + batch_size]]

    def split_batches(self, split: str, batch_size: int) -> Iterator[torch.Tensor]:
        x = self._split_x[split]
        assert x is not None, f"no {split} split"
        for start in range(0, x.shape[0], batch_size):
            yield x[start : start + batch_size]


class StreamedData(PoolData):
    """Features stay in host memory or on disk; batches travel to the device as they are needed.

    ``workers``: DataLoader processes reading ahead while the device computes (0 reads in this
    process). Memory stays bounded by a few batches per worker whatever the pool's size.
    """

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu", augment: Augment | None = None,
                 workers: int = 0):
        super().__init__(dataset, device, augment)
        if workers < 0:
            raise ValueError(f"loader workers must be >= 0, got {workers}")
        map_large_blocks()  # else a pass over a large pool may grow the process by gigabytes
        self.workers = workers
        self._split_x = {"test": dataset.x_test, "val": dataset.x_val}

    def features(self, ids: np.ndarray) -> torch.Tensor:
        rows = read_rows(self.dataset.x_train, self.dataset.positions(ids), keep_mapped=True)
        return self._to_device(torch.from_numpy(rows))

    def batches(self, ids: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
        return self._stream(self.dataset.x_train, self.dataset.positions(ids), batch_size)

    def split_batches(self, split: str, batch_size: int) -> Iterator[torch.Tensor]:
        x = self._split_x[split]
        assert x is not None, f"no {split} split"
        return self._stream(x, np.arange(x.shape[0]), batch_size)

    def _stream(self, source: Features, positions: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
        pin = self.device.type == "cuda"
        loader = DataLoader(_RowBatches(source, positions, batch_size), batch_size=None, shuffle=False,
                            num_workers=self.workers, pin_memory=pin)
        for batch in loader:
            yield self._to_device(batch)

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cpu":
            return batch
        return batch.to(self.device, non_blocking=batch.is_pinned())


class _RowBatches(TorchDataset):
    """Consecutive batches of rows of a feature source, one DataLoader item per batch."""

    def __init__(self, source: Features, positions: np.ndarray, batch_size: int):
        self.source, self.positions, self.batch_size = source, positions, batch_size

    def __len__(self) -> int:
        return -(-len(self.positions) // self.batch_size)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(read_rows(self.source, self.positions[i * self.batch_size : (i + 1) * self.batch_size]))


def read_rows(source: Features, positions: np.ndarray, keep_mapped: bool = False) -> np.ndarray:
    """Rows of an array or a store, as a float32 array in memory (``keep_mapped``: RowStore.read)."""
    if isinstance(source, RowStore):
        return source.read(positions, keep_mapped)
    return np.ascontiguousarray(source[positions], dtype=np.float32)


def pool_data(dataset: Dataset, device: torch.device | str = "cpu", stream: bool = False, workers: int = 0,
              augment: Augment | None = None) -> PoolData:
    """The placement a run uses: streamed when asked or when the pool is on disk, else on the device."""
    if stream or dataset.is_on_disk:
        return StreamedData(dataset, device, augment, workers)
    if workers:
        warnings.warn(f"{workers} loader workers asked for, but {dataset.name} sits on the device whole: they read "
                      "only streamed data (--stream, or a pool of .npy files)", stacklevel=2)
    return DeviceData(dataset, device, augment)
