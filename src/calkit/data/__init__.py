"""Datasets for calkit: the :class:`Dataset` type and the loaders that build it."""

from calkit.data.dataset import Dataset
from calkit.data.loaders import BUILTIN_DATASETS, describe, load_dataset

__all__ = ["Dataset", "load_dataset", "BUILTIN_DATASETS", "describe"]
