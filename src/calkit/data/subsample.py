"""A fixed random subset of a pool: smaller experiments that keep the real data's shape."""

from __future__ import annotations

import dataclasses

import numpy as np

from calkit.data.dataset import Dataset
from calkit.errors import DataError

SUBSAMPLE_SEED = 12345


def subsample_pool(ds: Dataset, size: int) -> Dataset:
    """The first ``size`` items of one fixed permutation of the pool (independent of run seeds),
    kept in their original order with their original ids; the test split is unchanged."""
    if size < 1:
        raise DataError(f"pool size must be at least 1, got {size}")
    if size >= ds.pool_size:
        return ds
    keep = np.sort(np.random.default_rng(SUBSAMPLE_SEED).permutation(ds.pool_size)[:size])
    return dataclasses.replace(
        ds,
        name=f"{ds.name}[{size}]",
        x_train=ds.x_train[keep],
        y_train=None if ds.y_train is None else ds.y_train[keep],
        ids=ds.ids[keep],
        texts=None if ds.texts is None else tuple(ds.texts[i] for i in keep),
        files=None if ds.files is None else tuple(ds.files[i] for i in keep),
    )
