"""Datasets for calkit: the :class:`Dataset` type, the loaders that build it (they only read), and
the setup step that fetches the built-in datasets into the cache (``calkit data fetch``)."""

from calkit.data.dataset import Dataset
from calkit.data.fetch import DatasetStatus, FetchReport, fetch_dataset, list_datasets
from calkit.data.loaders import BUILTIN_DATASETS, describe, load_dataset

__all__ = [
    "Dataset", "load_dataset", "BUILTIN_DATASETS", "describe",
    "fetch_dataset", "list_datasets", "DatasetStatus", "FetchReport",
]
