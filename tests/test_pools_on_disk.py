"""Pools larger than memory: .npy files read a batch at a time (RowStore), the folder loader, and
streamed placement (StreamedData) giving the same numbers as the data on the device."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from calkit.acquisition import ModelScoringContext
from calkit.config import RunConfig
from calkit.data import load_dataset
from calkit.data.rows import RowStore
from calkit.errors import DataError
from calkit.loop import ActiveLoop
from calkit.models import ModelSpec, build_model
from calkit.tensors import DeviceData, StreamedData, pool_data

from conftest import make_blobs, save_npz
from helpers import comparable, labeled_set, metrics


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Files found finite are remembered in the cache: this module's in a folder of its own."""
    monkeypatch.setenv("CALKIT_CACHE", str(tmp_path / "cache"))


def _shards(tmp_path, x, sizes, stem="x"):
    paths, start = [], 0
    for i, n in enumerate(sizes):
        paths.append(tmp_path / f"{stem}-{i:05d}.npy")
        np.save(paths[-1], x[start : start + n])
        start += n
    return paths


def _folder(tmp_path, ds, shards=(100, 80, 60)):
    """A dataset as a folder of .npy files, its pool in shards; returns the folder."""
    folder = tmp_path / "pool"
    folder.mkdir()
    _shards(folder, ds.x_train, shards)
    np.save(folder / "y.npy", ds.y_train)
    np.save(folder / "ids.npy", ds.ids)
    np.save(folder / "x_test.npy", ds.x_test)
    np.save(folder / "y_test.npy", ds.y_test)
    (folder / "classes.txt").write_text("\n".join(ds.class_names) + "\n")
    return folder


# -- RowStore ---------------------------------------------------------------------------------
def test_store_reads_rows_across_shards_in_any_order(tmp_path):
    x = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    store = RowStore(_shards(tmp_path, x, (20, 5, 25)))
    assert store.shape == (50, 3) and store.dtype == np.float32 and len(store) == 50
    rows = np.array([49, 0, 21, 20, 24, 25, 3, 3])
    np.testing.assert_array_equal(store.read(rows), x[rows])
    np.testing.assert_array_equal(np.asarray(store), x)
    np.testing.assert_array_equal(np.concatenate(list(store.chunks(7))), x)
    np.testing.assert_array_equal(store[-1], x[-1])


def test_store_selections_are_lazy_views_that_compose(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 2, 2)).astype(np.float32)
    store = RowStore(_shards(tmp_path, x, (10, 30)))
    view = store[np.arange(5, 40, 2)][3:9]
    assert isinstance(view, RowStore) and view.shape == (6, 2, 2)
    np.testing.assert_array_equal(np.asarray(view), x[np.arange(5, 40, 2)][3:9])
    mask = np.zeros(40, dtype=bool)
    mask[[1, 12, 39]] = True
    np.testing.assert_array_equal(np.asarray(store[mask]), x[mask])
    again = pickle.loads(pickle.dumps(view))  # what a DataLoader worker receives: names, not data
    assert len(pickle.dumps(view)) < 2000
    np.testing.assert_array_equal(np.asarray(again), np.asarray(view))
    with pytest.raises(IndexError):
        store.read(np.array([40]))
    with pytest.raises(IndexError):
        store[40]


def test_store_casts_stored_integers_to_float32_as_is(tmp_path):
    x = np.arange(24, dtype=np.uint8).reshape(6, 4)
    np.save(tmp_path / "x.npy", x)
    store = RowStore([tmp_path / "x.npy"])
    assert store.stored_dtype == np.uint8 and store.read(np.array([5])).dtype == np.float32
    np.testing.assert_array_equal(store.read(np.array([5, 1])), x[[5, 1]].astype(np.float32))


def test_store_refuses_what_it_cannot_read(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 4), dtype=np.float32))
    np.save(tmp_path / "b.npy", np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(DataError, match="every shard must hold items of one shape"):
        RowStore([tmp_path / "a.npy", tmp_path / "b.npy"])
    np.save(tmp_path / "f.npy", np.asfortranarray(np.zeros((3, 4), dtype=np.float32)))
    with pytest.raises(DataError, match="Fortran order"):
        RowStore([tmp_path / "f.npy"])
    np.save(tmp_path / "s.npy", np.array([["a", "b"]]))
    with pytest.raises(DataError, match="numeric"):
        RowStore([tmp_path / "s.npy"])
    np.save(tmp_path / "v.npy", np.zeros(3, dtype=np.float32))
    with pytest.raises(DataError, match="at least 2 dimensions"):
        RowStore([tmp_path / "v.npy"])
    (tmp_path / "junk.npy").write_bytes(b"not an npy file")
    with pytest.raises(DataError, match="not a readable .npy file"):
        RowStore([tmp_path / "junk.npy"])


# -- the folder loader --------------------------------------------------------------------------
def test_folder_loads_the_same_dataset_as_the_npz(tmp_path):
    ds = make_blobs()
    on_disk = load_dataset(_folder(tmp_path, ds))
    in_memory = load_dataset(save_npz(ds, tmp_path / "blobs.npz"))
    assert on_disk.is_on_disk and not in_memory.is_on_disk
    assert isinstance(on_disk.x_val, RowStore)  # carved lazily from the pool on disk
    np.testing.assert_array_equal(on_disk.ids, in_memory.ids)
    np.testing.assert_array_equal(np.asarray(on_disk.x_val), in_memory.x_val)
    assert on_disk.fingerprint() == in_memory.fingerprint()


def test_folder_cuts_a_test_split_lazily_and_reads_an_unlabeled_pool(tmp_path):
    ds = make_blobs()
    folder = tmp_path / "labeled"
    folder.mkdir()
    np.save(folder / "x.npy", ds.x_train)
    np.save(folder / "y.npy", np.array(ds.class_names)[ds.y_train])  # string labels
    cut = load_dataset(folder, test_fraction=0.25, val_fraction=0)
    assert isinstance(cut.x_test, RowStore) and cut.pool_size + len(cut.x_test) == len(ds.x_train)
    assert cut.class_names == ds.class_names
    unlabeled = tmp_path / "unlabeled"
    unlabeled.mkdir()
    np.save(unlabeled / "x.npy", ds.x_train)
    with pytest.raises(DataError, match="classes.txt"):
        load_dataset(unlabeled)
    (unlabeled / "classes.txt").write_text("cat\ndog\n")
    pool = load_dataset(unlabeled)
    assert not pool.has_pool_labels and pool.class_names == ("cat", "dog") and pool.pool_size == len(ds.x_train)


def test_folder_problems_are_named(tmp_path):
    ds = make_blobs()
    folder = _folder(tmp_path, ds)
    np.save(folder / "x.npy", ds.x_train)
    with pytest.raises(DataError, match="both x.npy and shards"):
        load_dataset(folder)
    (folder / "x.npy").unlink()
    (folder / "y_test.npy").unlink()
    with pytest.raises(DataError, match="needs both x_test.npy and y_test.npy"):
        load_dataset(folder)
    np.save(folder / "y_test.npy", ds.y_test[:-1])
    with pytest.raises(DataError, match="labels"):
        load_dataset(folder)
    np.save(folder / "y_test.npy", ds.y_test)
    bad = ds.x_train[:60].copy()
    bad[7, 1] = np.nan
    np.save(folder / "x-00002.npy", bad)
    with pytest.raises(DataError, match=r"x-00002.npy: pool features have NaN or infinite values in rows \[7\]"):
        load_dataset(folder)
    bad[7, 1] = 0
    np.save(folder / "x-00002.npy", bad.astype(np.float64))
    with pytest.raises(DataError, match="every shard must have one dtype"):
        load_dataset(folder)


def test_shards_go_in_numeric_order_padded_or_not(tmp_path):
    x = np.arange(12 * 2, dtype=np.float32).reshape(12, 2)
    for i in range(12):
        np.save(tmp_path / f"x-{i}.npy", x[i : i + 1])  # x-10 sorts before x-2 by name alone
    np.save(tmp_path / "y.npy", np.arange(12) % 2)
    ds = load_dataset(tmp_path, test_fraction=0, val_fraction=0)
    np.testing.assert_array_equal(np.asarray(ds.x_train), x)


def test_store_indexing_refuses_what_numpy_would_read_otherwise(tmp_path):
    x = np.zeros((50, 3), dtype=np.float32)
    store = RowStore(_shards(tmp_path, x, (50,)))
    for key in (np.ones(10, dtype=bool), True, (1, 2)):
        with pytest.raises(IndexError):
            store[key]
    with pytest.raises(ValueError):
        list(store.chunks(-1))


def test_a_large_store_is_fingerprinted_by_a_sample_of_rows(tmp_path, monkeypatch):
    """Opening a run checks the fingerprint: a pool of terabytes must not be read whole for it."""
    import calkit.data.rows as rows

    monkeypatch.setattr(rows, "FINGERPRINT_ROWS", 10)
    ds = make_blobs()
    folder = _folder(tmp_path, ds)
    data = load_dataset(folder)
    read, original = [], RowStore.read
    monkeypatch.setattr(RowStore, "read", lambda self, p, keep_mapped=False: read.append(len(p)) or original(self, p))
    before = data.fingerprint()
    assert sum(read) == 30  # 10 rows each of the pool, the test split and the validation split
    x = np.load(folder / "x-00000.npy")
    np.save(folder / "x-00000.npy", x + 1)
    assert load_dataset(folder).fingerprint() != before


# -- streamed placement -----------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 1])
def test_streamed_data_gives_the_device_data_batches(tmp_path, workers):
    ds = load_dataset(_folder(tmp_path, make_blobs()))
    streamed = StreamedData(ds, workers=workers)
    resident = DeviceData(ds)
    ids = ds.ids[::-3]
    torch.testing.assert_close(streamed.features(ids), resident.features(ids))
    for a, b in zip(streamed.batches(ids, 16), resident.batches(ids, 16), strict=True):
        torch.testing.assert_close(a, b)
    for split in ("test", "val"):
        got = torch.cat(list(streamed.split_batches(split, 32)))
        torch.testing.assert_close(got, torch.cat(list(resident.split_batches(split, 32))))
    assert isinstance(pool_data(ds), StreamedData)
    assert isinstance(pool_data(make_blobs()), DeviceData) and isinstance(pool_data(make_blobs(), stream=True), StreamedData)


def test_augmentation_reaches_training_batches_only(tmp_path):
    ds = load_dataset(_folder(tmp_path, make_blobs()))
    data = StreamedData(ds, augment=lambda x: x + 100)
    ids = ds.ids[:5]
    torch.testing.assert_close(data.train_features(ids), data.features(ids) + 100)
    assert float(torch.cat(list(data.batches(ids, 2))).max()) < 50


def test_scoring_streams_to_the_same_probabilities(tmp_path):
    ds = load_dataset(_folder(tmp_path, make_blobs()))
    torch.manual_seed(0)
    model = build_model(ModelSpec.parse("mlp"), ds.input_shape, ds.n_classes)
    ids = ds.ids[5:170]
    rng = np.random.default_rng(0)
    streamed = ModelScoringContext(model, StreamedData(ds, workers=1), rng, batch_size=32)
    resident = ModelScoringContext(model, DeviceData(ds), rng, batch_size=32)
    np.testing.assert_array_equal(streamed.probabilities(ids), resident.probabilities(ids))
    np.testing.assert_array_equal(streamed.embeddings(ids), resident.embeddings(ids))
    assert streamed.forward_samples == resident.forward_samples


def test_a_run_on_a_pool_on_disk_equals_the_run_in_memory(tmp_path):
    ds = make_blobs()
    cfg = dict(policy="cal", initial=30, round_size=20, rounds=3, seed=3)
    runs = {}
    for name, data, extra in (("memory", load_dataset(save_npz(ds, tmp_path / "b.npz")), {}),
                              ("disk", load_dataset(_folder(tmp_path, ds)), {"loader_workers": 1})):
        loop = ActiveLoop.create(tmp_path / name, RunConfig(**cfg, **extra), dataset=data)
        try:
            loop.run()
        finally:
            loop.close()
        runs[name] = tmp_path / name
    assert comparable(metrics(runs["disk"])) == comparable(metrics(runs["memory"]))
    assert labeled_set(runs["disk"]) == labeled_set(runs["memory"])


def test_the_augmentation_hook_reaches_training_through_the_run_api(tmp_path):
    from calkit import Run

    seen = []

    def augment(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return x + 0.01 * torch.randn_like(x)

    run = Run.create(tmp_path / "run", dataset=make_blobs(), policy="cal", initial=30, round_size=20, rounds=2,
                     augment=augment)
    try:
        run.advance()
    finally:
        run.close()
    assert seen and max(seen) <= 64 * 3  # training steps (new + replay), never a scoring batch of the pool
    with pytest.raises(Exception, match="augment= takes a function"):
        Run.create(tmp_path / "bad", dataset=make_blobs(), rounds=2, augment=3)


def test_a_run_made_with_an_augmentation_refuses_to_train_without_it(tmp_path):
    from calkit.errors import ConfigError

    loop = ActiveLoop.create(tmp_path / "run", RunConfig(initial=30, round_size=20, rounds=2), dataset=make_blobs(),
                             augment=lambda x: x)
    loop.close()
    plain = ActiveLoop.open(tmp_path / "run", dataset=make_blobs())
    try:
        with pytest.raises(ConfigError, match="pass it again"):
            plain.run()
    finally:
        plain.close()
    again = ActiveLoop.open(tmp_path / "run", dataset=make_blobs(), augment=lambda x: x)
    try:
        assert again.run().complete
    finally:
        again.close()


def test_a_file_found_finite_is_not_read_again_until_it_changes(tmp_path, monkeypatch):
    import os

    x = np.ones((30, 4), dtype=np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    os.utime(path, (1e9, 1e9))  # settled: modified long ago
    read, original = [], RowStore.read
    monkeypatch.setattr(RowStore, "read", lambda self, p, keep_mapped=False: read.append(len(p)) or original(self, p))
    RowStore([path]).check_finite()
    assert sum(read) == 30
    RowStore([path]).check_finite()
    assert sum(read) == 30  # remembered: not read again
    x[3, 1] = np.inf
    np.save(path, x)
    os.utime(path, (1e9 + 5, 1e9 + 5))
    with pytest.raises(DataError, match=r"rows \[3\]"):
        RowStore([path]).check_finite()
