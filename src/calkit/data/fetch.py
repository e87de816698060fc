"""Setup for the built-in datasets: what the cache holds, and fetching what it lacks.

Loading (:func:`calkit.data.load_dataset`) only reads the cache and never downloads, so a run
or a test cannot reach the network, run a package manager or stall on a download by
accident. This module is the one place that does, and only ``calkit data fetch``,
``calkit data list`` and the setup script (``scripts/fetch_data.sh``) call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calkit.data.cache import CACHE_ENV, cache_path, load_npz
from calkit.data.dataset import Dataset
from calkit.data.fashion_mnist import (
    FASHION_MNIST_ENV,
    _fashion_mnist_dir,
    _find_fashion_mnist_files,
)
from calkit.data.loaders import BUILTIN_DATASETS, canonical_name, describe, load_dataset
from calkit.data.packages import (
    EXTERNAL_DATASETS,
    ORIGINS,
    fetch_source,
    has_source,
    source_path,
)
from calkit.errors import DataError

#: The built-in datasets whose features are MiniLM embeddings of texts (slow to build).
TEXT_DATASETS = ("fine-foods", "vader-amazon", "vader-movies")
#: Where the datasets that calkit does not fetch come from, in words.
LOCAL_ORIGINS = {
    "digits": "scikit-learn (installed with calkit)",
    "fashion-mnist": "IDX files from the Debian package dataset-fashion-mnist (apt-get install), "
                     f"or any folder given by --data-dir or ${FASHION_MNIST_ENV}",
}


@dataclass(frozen=True)
class DatasetStatus:
    """Whether a built-in dataset loads offline now, and where it comes from.

    ``state``: ``ready`` (arrays built), ``fetched`` (source cached; the first load builds the
    arrays, embedding texts takes minutes), ``missing`` (run ``calkit data fetch NAME``),
    ``bundled`` (ships with a dependency) or ``found`` / ``not found`` (files outside the cache).
    """

    name: str
    state: str
    origin: str
    location: Path | None

    @property
    def available(self) -> bool:
        return self.state in ("ready", "fetched", "bundled", "found")


@dataclass(frozen=True)
class FetchReport:
    """What ``fetch_dataset`` did, with the times a user needs to judge later loads."""

    dataset: Dataset
    downloaded: bool
    fetch_seconds: float
    build_seconds: float
    load_seconds: float

    def summary(self) -> str:
        """One line: the loaded dataset, the timings and the class balance."""
        ds = self.dataset
        labels = [y for y in (ds.y_train, ds.y_val, ds.y_test) if y is not None]
        counts = sum((np.bincount(y, minlength=ds.n_classes) for y in labels), np.zeros(ds.n_classes, np.int64))
        balance = ", ".join(f"{c}={n}" for c, n in zip(ds.class_names, counts.tolist()))
        fetched = f"fetch {self.fetch_seconds:.1f}s" if self.downloaded else "nothing to fetch"
        return (f"{describe(ds)} | {fetched}, first load {self.build_seconds:.1f}s, "
                f"cached load {self.load_seconds:.2f}s | classes: {balance}")


def resolve_names(names: Iterable[str]) -> list[str]:
    """Canonical names of built-in datasets (aliases allowed), checked before any work starts."""
    resolved, unknown = [], []
    for name in names:
        canonical = canonical_name(name)
        if canonical is None:
            unknown.append(name)
        elif canonical not in resolved:
            resolved.append(canonical)
    if unknown:
        raise DataError(f"unknown dataset {', '.join(map(repr, unknown))}; built-in datasets: "
                        f"{', '.join(BUILTIN_DATASETS)}")
    return resolved


def dataset_status(name: str) -> DatasetStatus:
    """The status of one built-in dataset; reads the file system only (no loading, no network)."""
    (name,) = resolve_names([name])
    if name == "digits":
        return DatasetStatus(name, "bundled", LOCAL_ORIGINS[name], None)
    if name == "fashion-mnist":
        folder, _ = _fashion_mnist_dir(None)
        try:
            _find_fashion_mnist_files(None)
            state = "found"
        except DataError:
            state = "not found"
        return DatasetStatus(name, state, LOCAL_ORIGINS[name], folder)
    from calkit.data.external import arrays_path

    if arrays_path(name).is_file():
        return DatasetStatus(name, "ready", ORIGINS[name], arrays_path(name))
    return DatasetStatus(name, "fetched" if has_source(name) else "missing", ORIGINS[name], source_path(name))


def list_datasets() -> list[DatasetStatus]:
    """Every built-in dataset's status, in the order ``--dataset`` documents them."""
    return [dataset_status(name) for name in BUILTIN_DATASETS]


def _quiet(line: str) -> None:
    pass


def fetch_dataset(name: str, log: Callable[[str], None] = _quiet) -> FetchReport:
    """Put one built-in dataset into the cache: download and unpack its package, then build the
    arrays (text embeddings included) so that every later load is fast and offline.

    Idempotent: what the cache already holds is not fetched again. digits needs nothing;
    Fashion-MNIST is a system package that calkit does not install, so a missing copy raises
    the loader's DataError, which says how to get it.
    """
    (name,) = resolve_names([name])
    downloaded, t0 = False, time.perf_counter()
    if name in EXTERNAL_DATASETS:
        downloaded = _fetch_source_if_needed(name, log)
    else:
        log(f"{name}: {LOCAL_ORIGINS[name]}; calkit fetches nothing for it")
    t1 = time.perf_counter()
    if name in EXTERNAL_DATASETS and dataset_status(name).state != "ready":
        slow = " (embedding the texts takes minutes on a CPU)" if name in TEXT_DATASETS else ""
        log(f"{name}: building the cached arrays{slow}")
    load_dataset(name)
    t2 = time.perf_counter()
    dataset = load_dataset(name)  # timed again: what every later load costs
    t3 = time.perf_counter()
    return FetchReport(dataset, downloaded, t1 - t0, t2 - t1, t3 - t2)


def _fetch_source_if_needed(name: str, log: Callable[[str], None]) -> bool:
    """Fetch the source unless the cache has it or readable built arrays; True when it fetched."""
    from calkit.data.external import arrays_path

    if has_source(name) or load_npz(arrays_path(name)) is not None:
        log(f"{name}: already in the cache ({cache_path()})")
        return False
    log(f"{name}: fetching {ORIGINS[name]} into {cache_path()} (${CACHE_ENV} moves it)")
    path = fetch_source(name)
    log(f"{name}: source in {path}")
    return True
