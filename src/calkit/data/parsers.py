"""Readers for the file formats the real datasets arrive in: R's lazy-load databases
(``r-cran-modeldata``), the VADER ratings file, and AnnData ``.h5ad`` (scanpy).

Parsing is separate from fetching so the tests can run it on small files they write.
"""

from __future__ import annotations

import importlib
import lzma
import re
import struct
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from calkit.data.packages import DATA_HINT, PBMC_LABEL, VADER_FILE
from calkit.errors import DataError


def _require(module: str, dataset: str) -> ModuleType:
    """Import an optional dependency, or say which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"{dataset} needs the Python package {module!r}: pip install {module} (or {DATA_HINT})"
        ) from None


def rdb_object(rdb: bytes, offset: int, length: int, where: str = "Rdata.rdb") -> bytes:
    """The serialized R object at ``offset`` in an R lazy-load database (.rdb).

    Each entry is a 4-byte big-endian uncompressed length, then either a type byte
    (``Z``: raw LZMA2 stream, ``2``: bzip2, ``0``: stored) and the payload, or a zlib stream.
    """
    chunk = rdb[offset : offset + length]
    if length < 5 or len(chunk) != length:
        raise DataError(f"{where}: entry at {offset} (+{length}) is outside the file ({len(rdb)} bytes)")
    size = struct.unpack(">I", chunk[:4])[0]
    kind, body = chunk[4:5], chunk[5:]
    try:
        if kind == b"Z":
            data = lzma.decompress(body, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
        elif kind == b"2":
            import bz2

            data = bz2.decompress(body)
        elif kind == b"0":
            data = body
        else:
            data = zlib.decompress(chunk[4:])
    except (lzma.LZMAError, OSError, ValueError, zlib.error) as exc:
        raise DataError(f"{where}: entry at {offset} does not decompress: {exc}") from None
    if len(data) != size:
        raise DataError(f"{where}: entry at {offset} holds {len(data)} bytes, its header says {size}")
    return data


def read_rdata_objects(folder: Path, names: Sequence[str]) -> dict[str, Any]:
    """Named objects from ``folder/Rdata.rdx`` + ``Rdata.rdb``, converted by ``rdata`` (data frames -> pandas)."""
    rdata = _require("rdata", "fine-foods")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns that .rdx is not a known extension
        try:
            index = rdata.conversion.convert(rdata.parser.parse_file(folder / "Rdata.rdx"))
        except Exception as exc:  # rdata raises bare ValueError/NotImplementedError on bad input
            raise DataError(f"{folder / 'Rdata.rdx'}: not an R lazy-load index: {exc}") from exc
        variables = index.get("variables", {}) if isinstance(index, dict) else {}
        missing = [n for n in names if n not in variables]
        if missing:
            raise DataError(f"{folder / 'Rdata.rdx'}: no objects {missing}; it has {sorted(map(str, variables))[:20]}")
        rdb = (folder / "Rdata.rdb").read_bytes()
        out = {}
        for name in names:
            offset, length = (int(v) for v in variables[name])
            raw = rdb_object(rdb, offset, length, str(folder / "Rdata.rdb"))
            try:
                out[name] = rdata.conversion.convert(rdata.parser.parse_data(raw))
            except Exception as exc:
                raise DataError(f"{folder / 'Rdata.rdb'}: object {name!r} does not parse: {exc}") from exc
    return out


_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def fine_foods_split(frame: Any, where: str) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """(texts, labels, class names) of one modeldata fine-foods frame (columns review, score).

    Reviews carry HTML line breaks (``<br />``); they become newlines, for display and embedding.
    """
    codes, names = _factor(frame, "score", "review", where)
    reviews = frame["review"]
    if reviews.isna().any() or (codes < 0).any():
        raise DataError(f"{where}: missing reviews or scores")
    texts = [_BR.sub("\n", str(t)).strip() for t in reviews.tolist()]
    return texts, codes, names


def _factor(frame: Any, label: str, other: str, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes and levels of the R factor ``label``, after checking that ``label`` and ``other`` exist."""
    columns = [str(c) for c in frame.columns]
    if label not in columns or other not in columns:
        raise DataError(f"{where}: expected columns {other!r} and {label!r}, found {columns[:10]}")
    factor = frame[label]
    if not hasattr(factor, "cat"):
        raise DataError(f"{where}: {label!r} is not an R factor (dtype {factor.dtype})")
    return factor.cat.codes.to_numpy().astype(np.int64), tuple(str(c) for c in factor.cat.categories)


def cells_table(frame: Any, where: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
    """(features float64, labels, class names, is-test mask) of modeldata's ``cells`` frame.

    Columns: ``case`` (the official Train/Test split), ``class`` (PS poorly / WS well segmented)
    and numeric image features.
    """
    codes, names = _factor(frame, "class", "case", where)
    case = frame["case"].astype(str).to_numpy()
    if not set(case) <= {"Train", "Test"}:
        raise DataError(f"{where}: 'case' holds {sorted(set(case))}, expected Train and Test")
    features = frame.drop(columns=["case", "class"])
    try:
        x = features.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: non-numeric feature columns: {exc}") from None
    if (codes < 0).any() or not np.isfinite(x).all():
        raise DataError(f"{where}: missing classes or feature values")
    return x, codes, names, case == "Test"


def parse_vader(raw: bytes, where: str = VADER_FILE) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """(ids, texts, labels) from a VADER ground-truth file: ``id<TAB>mean rating<TAB>text``.

    The files are Latin-1. Neutral sentences (``|rating| <= 0.5``) are dropped, the label is the
    sign (0 negative, 1 positive) and the id is the 0-based line number, so it points back to
    the file.
    """
    ids: list[int] = []
    texts: list[str] = []
    labels: list[int] = []
    for line_no, line in enumerate(raw.decode("latin-1").splitlines()):
        line = line.removeprefix("\xef\xbb\xbf")  # a UTF-8 byte-order mark, as Latin-1 decodes it
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        try:
            rating = float(parts[1]) if len(parts) == 3 else float("nan")
        except ValueError:
            rating = float("nan")
        if not np.isfinite(rating):
            raise DataError(f"{where}: line {line_no + 1}: expected id<TAB>rating<TAB>text, got {line[:80]!r}")
        if abs(rating) <= 0.5:
            continue
        ids.append(line_no)
        texts.append(parts[2].strip())
        labels.append(int(rating > 0))
    if not ids:
        raise DataError(f"{where}: no non-neutral sentences")
    return np.array(ids, dtype=np.int64), tuple(texts), np.array(labels, dtype=np.int64)


def _h5_strings(values: np.ndarray) -> tuple[str, ...]:
    return tuple(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values.tolist())


def _h5_matrix(node: Any, where: str) -> np.ndarray:
    """X as a dense float32 array: a plain dataset, or a CSR/CSC group (data, indices, indptr)."""
    if not hasattr(node, "keys"):
        return np.asarray(node[()], dtype=np.float32)
    attrs = dict(node.attrs)
    shape = attrs.get("shape", attrs.get("h5sparse_shape"))
    kind = attrs.get("encoding-type", attrs.get("h5sparse_format", "csr"))
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if shape is None or not {"data", "indices", "indptr"} <= set(node.keys()):
        raise DataError(f"{where}: X is a group but not a sparse matrix (attrs {sorted(attrs)}, keys {list(node)})")
    n_rows, n_cols = (int(s) for s in shape)
    data, indices, indptr = (np.asarray(node[k][()]) for k in ("data", "indices", "indptr"))
    major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    dense = np.zeros((n_rows, n_cols), dtype=np.float32)
    if kind.startswith("csc"):
        dense[indices, major] = data
    else:
        dense[major, indices] = data
    return dense


def _h5_categorical(f: Any, key: str, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes and categories of ``obs/<key>`` in any h5ad layout.

    anndata >= 0.8: a group with ``codes`` and ``categories``; 0.7: a code dataset whose
    ``categories`` attribute references the names; before 0.7 (the scanpy file): ``obs`` is a
    compound dataset and the names are ``uns/<key>_categories``.
    """
    obs = f["obs"]
    if hasattr(obs, "keys"):
        if key not in obs:
            raise DataError(f"{where}: no obs column {key!r} (columns: {list(obs)})")
        node = obs[key]
        if hasattr(node, "keys"):
            return np.asarray(node["codes"][()], dtype=np.int64), _h5_strings(node["categories"][()])
        if "categories" in node.attrs:
            return np.asarray(node[()], dtype=np.int64), _h5_strings(f[node.attrs["categories"]][()])
        names, codes = np.unique(np.asarray(_h5_strings(node[()])), return_inverse=True)
        return codes.astype(np.int64), tuple(names.tolist())
    fields = obs.dtype.names or ()
    if key not in fields or f"uns/{key}_categories" not in f:
        raise DataError(f"{where}: no categorical obs column {key!r} (fields: {list(fields)})")
    return np.asarray(obs[key], dtype=np.int64), _h5_strings(f[f"uns/{key}_categories"][()])


def read_h5ad(path: Path, label_key: str = PBMC_LABEL) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(X float32, label codes, class names) from an .h5ad file, with h5py alone (no anndata)."""
    h5py = _require("h5py", "pbmc")
    try:
        with h5py.File(path, "r") as f:
            x = _h5_matrix(f["X"], str(path))
            codes, names = _h5_categorical(f, label_key, str(path))
    except (OSError, KeyError) as exc:
        raise DataError(f"{path}: not a readable h5ad file: {exc}") from None
    if codes.shape != (x.shape[0],):
        raise DataError(f"{path}: {codes.shape[0]} labels for {x.shape[0]} cells")
    if (codes < 0).any() or (codes >= len(names)).any():
        raise DataError(f"{path}: {int(((codes < 0) | (codes >= len(names))).sum())} cells have no valid {label_key}")
    if not np.isfinite(x).all():
        raise DataError(f"{path}: X has NaN or infinite values")
    return x, codes, names


