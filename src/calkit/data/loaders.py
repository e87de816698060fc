"""Turn a dataset name or a file into a validated :class:`Dataset`.

Builtin names: ``digits`` (scikit-learn, tiny, always available), ``fashion-mnist``
(IDX files on disk; nothing is downloaded, so runs work offline and reproducibly), and
``fine-foods``, ``vader-amazon``, ``vader-movies``, ``pbmc``, ``cells`` (read from the cache by
:mod:`calkit.data.external`, imported only when they are asked for; ``calkit data fetch NAME``
puts them there, loading never downloads).
Files: ``.npz`` and ``.csv`` with the layouts documented on :func:`load_dataset`, folders of
``.npy`` files whose pool stays on disk (:mod:`calkit.data.npy_folder`), folders of images, and
labeled texts (``.jsonl``, ``.tsv``, or ``.csv`` with a ``text`` column), embedded with MiniLM.

Each source has its module (``fashion_mnist``, ``npz_files``, ``csv_files``, ``text_files``,
``external``); the steps they share are in ``assemble``, including the fixed test split.

Every problem with the input raises :class:`DataError` with a message a user can act on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from calkit.data.assemble import DEFAULT_VAL_FRACTION, _build, carve_validation
from calkit.data.csv_files import _csv_has_text_column, _load_csv
from calkit.data.dataset import Dataset
from calkit.data.fashion_mnist import _load_fashion_mnist
from calkit.data.npz_files import _load_npz
from calkit.errors import DataError

#: Canonical names of the datasets that need no file argument.
BUILTIN_DATASETS: tuple[str, ...] = (
    "digits", "fashion-mnist", "fine-foods", "vader-amazon", "vader-movies", "pbmc", "cells",
)
#: File suffixes load_dataset understands.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".npz", ".csv", ".jsonl", ".tsv")
#: Suffixes whose files are always labeled texts (a .csv is one when its header has ``text``).
TEXT_SUFFIXES: tuple[str, ...] = (".jsonl", ".tsv")

_ALIASES = {
    "digits": "digits",
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "fine-foods": "fine-foods",
    "fine_foods": "fine-foods",
    "vader-amazon": "vader-amazon",
    "vader_amazon": "vader-amazon",
    "vader-movies": "vader-movies",
    "vader_movies": "vader-movies",
    "pbmc": "pbmc",
    "pbmc68k": "pbmc",
    "cells": "cells",
}
_EXTERNAL = ("fine-foods", "vader-amazon", "vader-movies", "pbmc", "cells")

# --------------------------------------------------------------------------- entry points


def canonical_name(name: str | os.PathLike) -> str | None:
    """The builtin dataset a name or alias stands for (``fmnist`` -> ``fashion-mnist``), else None."""
    return _ALIASES.get(os.fspath(name).strip().lower())


def load_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    test_fraction: float = 0.2,
    label_column: str = "label",
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> Dataset:
    """Load a builtin dataset by name, or a ``.npz`` / ``.csv`` / text file.

    ``data_dir``: where Fashion-MNIST's IDX files are (else ``$CALKIT_FASHION_MNIST_DIR``,
    else ``/usr/share/datasets/fashion-mnist``); a relative file path that does not exist
    is also looked up under it.

    ``test_fraction``: share of rows held out (stratified when possible) as the test set
    when the data has no test split of its own; 0 means no test split. Fashion-MNIST
    always uses its official split.

    Holdouts always use :data:`calkit.data.assemble.SPLIT_SEED`, whatever the run's seed, so
    every run of a dataset sees the same test (and validation) set.

    ``.npz`` keys: ``X`` (or ``x``), ``y``, optional ``X_test``/``x_test`` with ``y_test``,
    ``ids`` and ``class_names``. ``X`` is cast to float32 as is: *no normalisation*, scale
    the features yourself. ``y`` holds integer class indices (whole-number floats are fine)
    or strings; it may be omitted for an unlabeled pool when ``class_names`` is given.

    ``.csv``: a header row, a label column (``label_column``), an optional ``id`` column;
    every other column is a numeric feature. Class names are the sorted distinct labels
    (numerically sorted when all are integers).

    A folder of ``.npy`` files (``x.npy`` or shards ``x-*.npy``, ``y.npy``, ...; see
    :mod:`calkit.data.npy_folder`) is memory-mapped: its pool, and the splits cut from it, stay
    on disk and are read a batch at a time, for pools larger than memory.

    Texts: ``.jsonl`` (one object per line), ``.tsv``, or a ``.csv`` whose header has a
    ``text`` column: fields ``text``, the label, optional integer ``id``; features are MiniLM
    embeddings (needs ``calkit[text]``), see :func:`calkit.data.text_files.load_text_file`.

    ``fine-foods``, ``vader-amazon``, ``vader-movies``, ``pbmc`` and ``cells`` are read from the
    cache (see :mod:`calkit.data.external`); when one is missing a DataError names the command
    that fetches it, ``calkit data fetch NAME``. fine-foods and cells keep their own test splits.

    ``val_fraction``: share of a labeled pool carved out (stratified, fixed seed) as the
    validation split, for tuning; data that brings one (``X_val``/``y_val`` in an ``.npz``, a
    ``split`` column in a ``.csv`` or text file) keeps its own. 0 means no validation split.
    """
    _check_fraction(test_fraction)
    _check_fraction(val_fraction, "val_fraction")
    return carve_validation(_load_source(name_or_path, data_dir, test_fraction, label_column), val_fraction)


def _load_source(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None, test_fraction: float,
                 label_column: str) -> Dataset:
    """The dataset as its source has it: pool, and the test and validation splits it brings."""
    name = canonical_name(name_or_path)
    if name is not None:
        if name == "digits":
            return _load_digits(test_fraction)
        if name in _EXTERNAL:
            from calkit.data.external import load_external

            return load_external(name, test_fraction)
        return _load_fashion_mnist(data_dir)
    npy = _folder(Path(name_or_path), data_dir, "npy")
    if npy is not None:
        from calkit.data.npy_folder import load_npy_folder

        return load_npy_folder(npy, test_fraction)
    folder = _folder(Path(name_or_path), data_dir, "images")
    if folder is not None:
        from calkit.data.image_folder import load_image_folder

        return load_image_folder(folder, test_fraction)
    path = _resolve_path(Path(name_or_path), data_dir)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, test_fraction)
    if suffix in TEXT_SUFFIXES or _csv_has_text_column(path):
        from calkit.data.text_files import load_text_file

        return load_text_file(path, test_fraction, label_column)
    return _load_csv(path, label_column, test_fraction)


def describe(ds: Dataset) -> str:
    """One-line summary, for logs and the CLI, so a user sees what was actually loaded."""
    test = int(ds.x_test.shape[0]) if ds.has_test else 0
    val = int(ds.x_val.shape[0]) if ds.has_val else 0
    unlabeled = "" if ds.has_pool_labels else " (unlabeled)"
    shape = "x".join(str(s) for s in ds.input_shape)
    disk = f", on disk ({len(ds.x_train.paths)} files, read in batches)" if ds.is_on_disk else ""
    return (f"{ds.name}: pool {ds.pool_size}{unlabeled}, validation {val}, test {test}, {ds.n_classes} classes, "
            f"input {shape}{disk}")


def _check_fraction(fraction: float, name: str = "test_fraction") -> None:
    """Reject fractions that would leave an empty pool or make no sense."""
    if not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
        raise DataError(f"{name} must be a number in [0, 1), got {fraction!r}")


def _folder(path: Path, data_dir: str | os.PathLike | None, kind: str) -> Path | None:
    """The folder of ``.npy`` files or of images ``path`` names (directly or under ``data_dir``), if it is one."""
    from calkit.data.image_folder import is_image_folder
    from calkit.data.npy_folder import is_npy_folder

    test = is_npy_folder if kind == "npy" else is_image_folder
    for candidate in [path] + ([Path(data_dir) / path] if data_dir is not None and not path.is_absolute() else []):
        if candidate.is_dir() and test(candidate):
            return candidate
    return None


def _resolve_path(path: Path, data_dir: str | os.PathLike | None) -> Path:
    """The file to read, or a DataError saying what is wrong with the argument."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        builtins = ", ".join(BUILTIN_DATASETS)
        aliases = ", ".join(a for a in _ALIASES if a not in BUILTIN_DATASETS)
        raise DataError(
            f"unknown dataset {os.fspath(path)!r}: not a builtin dataset ({builtins}; aliases: {aliases}) "
            f"and not a file with a supported suffix ({', '.join(SUPPORTED_SUFFIXES)}), a folder of images or a folder of .npy files (x.npy, y.npy, ...)"
        )
    candidates = [path]
    if data_dir is not None and not path.is_absolute():
        candidates.append(Path(data_dir) / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(f"no such file: {' or '.join(str(c) for c in candidates)}")


# --------------------------------------------------------------------------- digits


def _load_digits(test_fraction: float) -> Dataset:
    """scikit-learn's 8x8 digits, scaled to [0, 1], with a fixed stratified test holdout.

    Ids are the row numbers in ``load_digits`` order, so they stay meaningful across runs.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    names = tuple(str(i) for i in range(10))
    return _build("digits", x, y, names, np.arange(len(y), dtype=np.int64), test_fraction)


