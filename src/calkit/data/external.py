"""The real datasets that ship inside registry packages: loading them from the cache.

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

``calkit data fetch NAME`` (:func:`calkit.data.fetch.fetch_dataset`) downloads and unpacks a
package into the cache (``calkit.data.cache``) and builds the arrays once. The loaders here only
read the cache: when it lacks the files they raise a DataError naming that command, and never
download or run anything themselves. :mod:`calkit.data.parsers` reads the formats; user text
files are :mod:`calkit.data.text_files`. Text is embedded with MiniLM (``calkit.data.embed``)
and the final arrays are cached as ``.npz``, so only the first load (done by the fetch) is slow. Test splits
are fixed (:data:`calkit.data.assemble.SPLIT_SEED`), as for every loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calkit.data import embed
from calkit.data.assemble import _build, split_off_test
from calkit.data.cache import (
    cache_path,
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
    require_source,
)
from calkit.data.parsers import (
    cells_table,
    fine_foods_split,
    parse_vader,
    read_h5ad,
    read_rdata_objects,
)
from calkit.errors import DataError


def arrays_path(name: str) -> Path:
    """Where the built arrays of ``name`` are cached (the file may not exist yet)."""
    return cache_path("datasets", f"{name}-v{CACHE_VERSION}.npz")


def load_fine_foods() -> Dataset:
    """Fine-food reviews: the package's own 4,000 / 1,000 split (products disjoint), MiniLM features."""
    path = arrays_path("fine-foods")
    arrays = load_npz(path)
    if arrays is None:
        frames = read_rdata_objects(require_source("fine-foods"), FINE_FOODS_OBJECTS)
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
    path = arrays_path(name)
    arrays = load_npz(path)
    if arrays is None:
        source = require_source(name)
        ids, texts, y = parse_vader(source.read_bytes(), str(source))
        arrays = {"x": embed.cached_embeddings(texts, name), "y": y, "ids": ids, **pack_texts(texts)}
        save_npz(path, **arrays)
    return _build(name, arrays["x"], arrays["y"], VADER_CLASSES, arrays["ids"], test_fraction,
                  texts=unpack_texts(arrays))


def load_cells() -> Dataset:
    """Microscopy cells: the official Train/Test split; features log-scaled where all positive
    (areas, intensities and counts are heavily skewed), then standardised with the pool's moments."""
    path = arrays_path("cells")
    arrays = load_npz(path)
    if arrays is None:
        frame = read_rdata_objects(require_source("cells"), (CELLS_OBJECT,))[CELLS_OBJECT]
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
    path = arrays_path("pbmc")
    arrays = load_npz(path)
    if arrays is None:
        x, y, names = read_h5ad(require_source("pbmc"))
        arrays = {"x": x, "y": y, "class_names": np.array(names)}
        save_npz(path, **arrays)
    x, y = arrays["x"].astype(np.float32), arrays["y"].astype(np.int64)
    pool, test = split_off_test(y, test_fraction)
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
