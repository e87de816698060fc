"""The real datasets that ship inside registry packages: loading, caching, and a command line.

Only package registries are reachable where calkit is developed and tested, so the real
data comes from packages that happen to contain it (see ``shared/spec/datasets.md``):

* ``fine-foods``: Amazon Fine Food reviews (``small_fine_foods`` in R's *modeldata*, the
  objects ``training_data`` / ``testing_data``), from the Debian package ``r-cran-modeldata``
  (downloaded and unpacked, never installed: installing pulls in R).
* ``vader-amazon`` and ``vader-movies``: Amazon and movie review sentences with human
  sentiment ratings, from the sdist of ``vadersentiment==3.3.2``.
* ``pbmc``: 700 single cells x 765 genes, 10 cell types, from the ``scanpy`` wheel.
* ``cells``: 2,019 microscopy cells x 56 image features, poorly or well segmented, with the
  official Train/Test split (``cells`` in R's *modeldata*, the same Debian package as fine-foods).

:func:`calkit.data.packages.setup_dataset` fetches and unpacks a package into the cache
(``calkit.data.cache``); the loaders call it themselves when the cache lacks the files, and
:mod:`calkit.data.parsers` reads the formats. User text files are :mod:`calkit.data.text_files`. Text is embedded with MiniLM
(``calkit.data.embed``) and the final arrays are cached as ``.npz``, so only the first load
is slow. Test splits are fixed (:data:`calkit.data.assemble.SPLIT_SEED`), as for every loader.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calkit.data import embed
from calkit.data.cache import (
    cache_dir,
    load_npz,
    pack_texts,
    save_npz,
    unpack_texts,
)
from calkit.data.dataset import Dataset
from calkit.data.packages import (
    CACHE_VERSION,
    CELLS_OBJECT,
    EXTERNAL_DATASETS,
    FINE_FOODS_OBJECTS,
    VADER_CLASSES,
    setup_dataset,
)
from calkit.data.parsers import (
    cells_table,
    fine_foods_split,
    parse_vader,
    read_h5ad,
    read_rdata_objects,
)
from calkit.errors import DataError


def _cached_path(name: str) -> Path:
    return cache_dir("datasets") / f"{name}-v{CACHE_VERSION}.npz"


def _split(y: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (pool, test) rows: the same stratified holdout as every other calkit loader."""
    from calkit.data.assemble import _holdout

    if test_fraction <= 0:
        return np.arange(len(y)), np.arange(0)
    return _holdout(y, test_fraction)


def _labeled_texts_dataset(name: str, x: np.ndarray, y: np.ndarray, ids: np.ndarray, texts: Sequence[str],
                           class_names: tuple[str, ...], test_fraction: float) -> Dataset:
    """Split embedded texts into pool and test; ``texts`` follows the pool rows."""
    pool, test = _split(y, test_fraction)
    has_test = len(test) > 0
    return Dataset(name=name, x_train=x[pool], y_train=y[pool], class_names=class_names, ids=ids[pool],
                   x_test=x[test] if has_test else None, y_test=y[test] if has_test else None,
                   texts=tuple(texts[i] for i in pool))


def load_fine_foods() -> Dataset:
    """Fine-food reviews: the package's own 4,000 / 1,000 split (products disjoint), MiniLM features."""
    path = _cached_path("fine-foods")
    arrays = load_npz(path)
    if arrays is None:
        frames = read_rdata_objects(setup_dataset("fine-foods"), FINE_FOODS_OBJECTS)
        train_texts, y_train, names = fine_foods_split(frames["training_data"], "fine-foods training_data")
        test_texts, y_test, test_names = fine_foods_split(frames["testing_data"], "fine-foods testing_data")
        if test_names != names:
            raise DataError(f"fine-foods: train classes {names} differ from test classes {test_names}")
        arrays = {
            "x_train": embed.cached_embeddings(train_texts, "fine-foods-train"), "y_train": y_train,
            "x_test": embed.cached_embeddings(test_texts, "fine-foods-test"), "y_test": y_test,
            "class_names": np.array(names), **pack_texts(train_texts),
        }
        save_npz(path, **arrays)
    return Dataset(name="fine-foods", x_train=arrays["x_train"], y_train=arrays["y_train"],
                   class_names=tuple(arrays["class_names"].tolist()),
                   ids=np.arange(len(arrays["y_train"]), dtype=np.int64),
                   x_test=arrays["x_test"], y_test=arrays["y_test"], texts=unpack_texts(arrays))


def load_vader(name: str, test_fraction: float = 0.2) -> Dataset:
    """Non-neutral review sentences (``vader-amazon`` or ``vader-movies``), label = sign of the
    human rating, MiniLM features."""
    path = _cached_path(name)
    arrays = load_npz(path)
    if arrays is None:
        source = setup_dataset(name)
        ids, texts, y = parse_vader(source.read_bytes(), str(source))
        arrays = {"x": embed.cached_embeddings(texts, name), "y": y, "ids": ids, **pack_texts(texts)}
        save_npz(path, **arrays)
    return _labeled_texts_dataset(name, arrays["x"], arrays["y"], arrays["ids"], unpack_texts(arrays),
                                  VADER_CLASSES, test_fraction)


def load_cells() -> Dataset:
    """Microscopy cells: the official Train/Test split; features log-scaled where all positive
    (areas, intensities and counts are heavily skewed), then standardised with the pool's moments."""
    path = _cached_path("cells")
    arrays = load_npz(path)
    if arrays is None:
        frame = read_rdata_objects(setup_dataset("cells"), (CELLS_OBJECT,))[CELLS_OBJECT]
        x, y, names, is_test = cells_table(frame, "modeldata cells")
        arrays = {"x": x, "y": y, "is_test": is_test, "class_names": np.array(names)}
        save_npz(path, **arrays)
    x, y, is_test = arrays["x"].astype(np.float64), arrays["y"].astype(np.int64), arrays["is_test"].astype(bool)
    positive = (x > 0).all(axis=0)
    x[:, positive] = np.log(x[:, positive])
    pool = ~is_test
    mean, std = x[pool].mean(axis=0), x[pool].std(axis=0)
    std[std < 1e-9] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    return Dataset(name="cells", x_train=x[pool], y_train=y[pool], class_names=tuple(arrays["class_names"].tolist()),
                   ids=np.flatnonzero(pool).astype(np.int64), x_test=x[is_test], y_test=y[is_test])


def load_pbmc(test_fraction: float = 0.2) -> Dataset:
    """PBMC cells, genes standardised with the pool's per-gene mean and std (none from the test set)."""
    path = _cached_path("pbmc")
    arrays = load_npz(path)
    if arrays is None:
        x, y, names = read_h5ad(setup_dataset("pbmc"))
        arrays = {"x": x, "y": y, "class_names": np.array(names)}
        save_npz(path, **arrays)
    x, y = arrays["x"].astype(np.float32), arrays["y"].astype(np.int64)
    pool, test = _split(y, test_fraction)
    mean = x[pool].mean(axis=0)
    std = x[pool].std(axis=0)
    std[std < 1e-6] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    has_test = len(test) > 0
    return Dataset(name="pbmc", x_train=x[pool], y_train=y[pool], class_names=tuple(arrays["class_names"].tolist()),
                   ids=pool.astype(np.int64), x_test=x[test] if has_test else None,
                   y_test=y[test] if has_test else None)


def load_external(name: str, test_fraction: float = 0.2) -> Dataset:
    """Dispatch for :func:`calkit.data.load_dataset` (fine-foods and cells keep their official splits)."""
    if name == "fine-foods":
        return load_fine_foods()
    if name in ("vader-amazon", "vader-movies"):
        return load_vader(name, test_fraction)
    if name == "pbmc":
        return load_pbmc(test_fraction)
    if name == "cells":
        return load_cells()
    raise DataError(f"unknown external dataset {name!r}; known: {', '.join(EXTERNAL_DATASETS)}")



# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch and load datasets, printing one summary line each with timings."""
    from calkit.data.loaders import describe

    parser = argparse.ArgumentParser(prog="python -m calkit.data.external", description=main.__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"datasets to set up: {', '.join(EXTERNAL_DATASETS)}")
    parser.add_argument("--all", action="store_true", help="set up and load every external dataset")
    args = parser.parse_args(argv)
    names = list(EXTERNAL_DATASETS) if args.all or not args.names else args.names
    failed = 0
    for name in names:
        try:
            t0 = time.perf_counter()
            setup_dataset(name)
            t1 = time.perf_counter()
            load_external(name)
            t2 = time.perf_counter()
            ds = load_external(name)
            t3 = time.perf_counter()
        except DataError as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            failed += 1
            continue
        counts = np.bincount(ds.y_train, minlength=ds.n_classes)
        if ds.has_test:
            counts = counts + np.bincount(ds.y_test, minlength=ds.n_classes)
        balance = ", ".join(f"{c}={n}" for c, n in zip(ds.class_names, counts.tolist()))
        print(f"{describe(ds)} | setup {t1 - t0:.1f}s, first load {t2 - t1:.1f}s, "
              f"cached load {t3 - t2:.2f}s | classes: {balance}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
