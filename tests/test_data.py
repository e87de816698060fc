"""Tests for calkit.data: IDX reader, builtin loaders, npz/csv loaders, Dataset ids."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from calkit.data import BUILTIN_DATASETS, Dataset, describe
from calkit.data import load_dataset as _load_dataset
from calkit.data.idx import read_idx
from calkit.errors import DataError


def load_dataset(*args, **kw):
    """These tests pin each loader's own splits; the validation carve has tests of its own
    (tests/test_validation_split.py)."""
    kw.setdefault("val_fraction", 0)
    return _load_dataset(*args, **kw)

REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")
_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Serialise an array as IDX by hand (independent of the reader under test)."""
    code = _CODES[arr.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, compress: bool = False) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_fmnist(folder: Path, n_train: int = 50, n_test: int = 20, compress: bool = True) -> dict:
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        write_idx(folder / (name + (".gz" if compress else "")), arr, compress)
    return arrays


def save_npz(tmp_path: Path, **arrays) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def blobs(n: int = 40, d: int = 3, k: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.normal(size=(n, d)) + y[:, None], y


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", list(_CODES))
def test_idx_round_trip(tmp_path, compress, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype is np.uint8:
        arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / "a.idx", arr, compress))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)
    out[0, 0, 0] = 1  # writable


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "plain.gz", arr, compress=False)), arr)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "packed", arr, compress=True)), arr)


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match="bad.idx.*not an IDX file"):
        read_idx(path)


def test_idx_unknown_dtype_code(tmp_path):
    path = tmp_path / "code.idx"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match="code.idx.*dtype code 0x07"):
        read_idx(path)


def test_idx_truncated_data(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(idx_bytes(np.zeros((4, 5), np.uint8))[:-3])
    with pytest.raises(DataError, match="short.idx.*truncated"):
        read_idx(path)


def test_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(np.zeros((4, 5), np.uint8)) + b"xx")
    with pytest.raises(DataError, match="long.idx.*trailing"):
        read_idx(path)


def test_idx_truncated_header_and_gzip(tmp_path):
    short = tmp_path / "hdr.idx"
    short.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="hdr.idx.*header truncated"):
        read_idx(short)
    tiny = tmp_path / "tiny.idx"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="tiny.idx"):
        read_idx(tiny)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 50), np.uint8)))[:30])
    with pytest.raises(DataError, match="broken.gz.*gzip"):
        read_idx(broken)


def test_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "nope.idx")


# --------------------------------------------------------------------------- fashion-mnist


@pytest.mark.parametrize("compress", [False, True])
def test_fashion_mnist_synthetic(tmp_path, compress):
    raw = write_fmnist(tmp_path / "fm", compress=compress)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "fm")
    assert ds.name == "fashion-mnist"
    assert ds.x_train.shape == (50, 1, 28, 28) and ds.x_test.shape == (20, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.ids, np.arange(50))
    np.testing.assert_array_equal(ds.y_train, raw["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.y_test, raw["t10k-labels-idx1-ubyte"])
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[-1] == "Ankle boot" and ds.n_classes == 10
    assert abs(float(ds.x_train.mean())) < 1e-4 and abs(float(ds.x_train.std()) - 1) < 1e-4
    scaled = raw["train-images-idx3-ubyte"] / 255.0
    expected_test = (raw["t10k-images-idx3-ubyte"] / 255.0 - scaled.mean()) / scaled.std()
    np.testing.assert_allclose(ds.x_test[:, 0], expected_test, atol=1e-5)


def test_fashion_mnist_aliases_and_env(tmp_path, monkeypatch):
    write_fmnist(tmp_path / "env", n_train=12, n_test=5)
    monkeypatch.setenv("CALKIT_FASHION_MNIST_DIR", str(tmp_path / "env"))
    for name in ("fashion_mnist", "fmnist", "Fashion-MNIST"):
        assert load_dataset(name).pool_size == 12


def test_fashion_mnist_missing_files_message(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path / "empty")
    msg = str(info.value)
    assert str(tmp_path / "empty") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg
    assert "train-images-idx3-ubyte" in msg


def test_fashion_mnist_label_count_mismatch(tmp_path):
    write_fmnist(tmp_path, n_train=10, n_test=5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(9, np.uint8), compress=True)
    with pytest.raises(DataError, match="9 labels for 10 images"):
        load_dataset("fmnist", data_dir=tmp_path)


@pytest.mark.skipif(not REAL_FMNIST.is_dir(), reason="Fashion-MNIST not installed")
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist", data_dir=REAL_FMNIST)
    assert ds.pool_size == 60000 and ds.x_test.shape[0] == 10000 and ds.n_classes == 10
    assert set(np.unique(ds.y_train).tolist()) == set(range(10))


# --------------------------------------------------------------------------- digits


def test_digits_shapes_and_fixed_split():
    a = load_dataset("digits")
    b = load_dataset("digits")  # a second load: the split is fixed, not drawn per call
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.dtype == np.float32
    assert a.class_names == tuple(str(i) for i in range(10))
    assert a.pool_size + a.x_test.shape[0] == 1797
    assert a.x_test.shape[0] == 360
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert len(np.unique(a.ids)) == a.pool_size and a.ids.min() >= 0 and a.ids.max() < 1797
    assert a.fingerprint() == b.fingerprint()


def test_digits_ids_are_load_digits_rows():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    bunch = load_digits()
    np.testing.assert_allclose(ds.x_train.reshape(ds.pool_size, -1), bunch.data[ds.ids] / 16.0, atol=1e-6)
    np.testing.assert_array_equal(ds.y_train, bunch.target[ds.ids])
    stratified = np.bincount(ds.y_test, minlength=10)
    assert stratified.min() >= 34  # about 36 per class


def test_digits_no_test_split():
    ds = load_dataset("digits", test_fraction=0)
    assert ds.pool_size == 1797 and not ds.has_test


# --------------------------------------------------------------------------- npz


def test_npz_int_labels_with_holdout(tmp_path):
    x, y = blobs(40, k=4)
    ds = load_dataset(str(save_npz(tmp_path, X=x, y=y)), test_fraction=0.25)
    assert ds.name == "data" and ds.class_names == ("0", "1", "2", "3")
    assert ds.pool_size == 30 and ds.x_test.shape == (10, 3)
    assert np.bincount(ds.y_test, minlength=4).min() >= 2  # stratified
    assert ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train, x[ds.ids].astype(np.float32))
    assert load_dataset(str(tmp_path / "data.npz"), test_fraction=0.25).ids.tolist() == ds.ids.tolist()


def test_npz_no_normalisation_and_lowercase_x(tmp_path):
    x = np.arange(12, dtype=np.int32).reshape(6, 2) * 100
    ds = load_dataset(str(save_npz(tmp_path, x=x, y=np.array([0, 1] * 3))), test_fraction=0)
    np.testing.assert_array_equal(ds.x_train, x.astype(np.float32))


def test_npz_string_labels(tmp_path):
    x, y = blobs(30, k=3)
    labels = np.array(["cat", "dog", "ant"])[y]
    x_test = np.zeros((3, 3))
    y_test = np.array(["bee", "cat", "dog"])
    ds = load_dataset(str(save_npz(tmp_path, X=x, y=labels, X_test=x_test, y_test=y_test)))
    assert ds.class_names == ("ant", "bee", "cat", "dog")
    np.testing.assert_array_equal(np.array(ds.class_names)[ds.y_train], labels)
    np.testing.assert_array_equal(ds.y_test, [1, 2, 3])


def test_npz_provided_test_split_and_ids(tmp_path):
    x, y = blobs(10)
    ids = np.arange(100, 110)[::-1]
    ds = load_dataset(str(save_npz(tmp_path, X=x, y=y, X_test=x[:4], y_test=y[:4], ids=ids)))
    assert ds.pool_size == 10 and ds.x_test.shape[0] == 4
    np.testing.assert_array_equal(ds.ids, ids)
    assert ds.ids.dtype == np.int64


def test_npz_float_whole_labels_ok(tmp_path):
    x, y = blobs(10)
    ds = load_dataset(str(save_npz(tmp_path, X=x, y=y.astype(np.float64))), test_fraction=0)
    np.testing.assert_array_equal(ds.y_train, y)


def test_npz_non_integer_float_labels(tmp_path):
    x, _ = blobs(4)
    with pytest.raises(DataError, match="non-integer labels"):
        load_dataset(str(save_npz(tmp_path, X=x, y=np.array([0.0, 1.5, 1.0, 0.0]))))


def test_npz_missing_y_without_class_names(tmp_path):
    x, _ = blobs(6)
    with pytest.raises(DataError, match="no labels.*class_names"):
        load_dataset(str(save_npz(tmp_path, X=x)))


def test_npz_unlabeled_pool_with_class_names(tmp_path):
    x, _ = blobs(6)
    ds = load_dataset(str(save_npz(tmp_path, X=x, class_names=np.array(["no", "yes"]))))
    assert ds.y_train is None and not ds.has_pool_labels and not ds.has_test
    assert ds.class_names == ("no", "yes") and ds.pool_size == 6
    assert "unlabeled" in describe(ds)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_npz_non_finite_features(tmp_path, bad):
    x, y = blobs(8)
    x[5, 1] = bad
    with pytest.raises(DataError, match=r"NaN or infinite.*\[5\]"):
        load_dataset(str(save_npz(tmp_path, X=x, y=y)))


def test_npz_label_out_of_range(tmp_path):
    x, _ = blobs(4)
    path = save_npz(tmp_path, X=x, y=np.array([0, 1, 2, 1]), class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"outside 0\.\.1"):
        load_dataset(str(path))


def test_npz_mismatched_lengths(tmp_path):
    x, y = blobs(8)
    with pytest.raises(DataError, match="8 rows but y has 7 labels"):
        load_dataset(str(save_npz(tmp_path, X=x, y=y[:7])))


def test_npz_one_dimensional_x(tmp_path):
    with pytest.raises(DataError, match="at least 2 dimensions"):
        load_dataset(str(save_npz(tmp_path, X=np.arange(6.0), y=np.array([0, 1] * 3))))


def test_npz_object_array_refused(tmp_path):
    x, _ = blobs(2)
    path = save_npz(tmp_path, X=x, y=np.array(["a", None], dtype=object))
    with pytest.raises(DataError, match="Python objects"):
        load_dataset(str(path))


def test_npz_duplicate_ids_and_not_a_zip(tmp_path):
    x, y = blobs(4)
    with pytest.raises(DataError, match="not unique"):
        load_dataset(str(save_npz(tmp_path, X=x, y=y, ids=np.array([1, 2, 2, 3]))))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="junk.npz"):
        load_dataset(str(junk))


def test_npz_tiny_class_falls_back_to_unstratified(tmp_path):
    x, _ = blobs(10)
    y = np.array([0] * 9 + [1])
    ds = load_dataset(str(save_npz(tmp_path, X=x, y=y)), test_fraction=0.2)
    assert ds.pool_size == 8 and ds.x_test.shape[0] == 2


# --------------------------------------------------------------------------- csv


def write_csv(tmp_path: Path, text: str, name: str = "table.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_happy_path_with_ids(tmp_path):
    lines = ["id,f1,label,f2"] + [f"{100 + i},{i},{['10', '9', '2'][i % 3]},{i * 0.5}" for i in range(12)]
    ds = load_dataset(write_csv(tmp_path, "\n".join(lines) + "\n"), test_fraction=0)
    assert ds.class_names == ("2", "9", "10")
    assert ds.x_train.shape == (12, 2) and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.ids, np.arange(100, 112))
    np.testing.assert_array_equal(ds.x_train[3], [3.0, 1.5])
    assert ds.class_names[ds.y_train[1]] == "9"


def test_csv_string_labels_custom_column_and_holdout(tmp_path):
    lines = ["a,b,kind"] + [f"{i},{-i},{'yes' if i % 2 else 'no'}" for i in range(20)]
    ds = load_dataset(write_csv(tmp_path, "\n".join(lines)), label_column="kind", test_fraction=0.2)
    assert ds.class_names == ("no", "yes")
    assert ds.pool_size == 16 and ds.x_test.shape == (4, 2)
    np.testing.assert_array_equal(ds.x_train[:, 0], ds.ids)  # ids are the data row numbers


def test_csv_non_numeric_cell_names_line_and_column(tmp_path):
    text = "x1,x2,label\n1,2,a\n3,oops,b\n"
    with pytest.raises(DataError, match=r"line 3, column 'x2'.*'oops'"):
        load_dataset(write_csv(tmp_path, text))


def test_csv_nan_cell_names_line(tmp_path):
    with pytest.raises(DataError, match=r"line 2, column 'x1'"):
        load_dataset(write_csv(tmp_path, "x1,label\nnan,a\n2,b\n"))


def test_csv_missing_label_column(tmp_path):
    with pytest.raises(DataError, match="no label column 'label'"):
        load_dataset(write_csv(tmp_path, "x1,x2,target\n1,2,a\n"))


def test_csv_empty_label_and_ragged_row(tmp_path):
    with pytest.raises(DataError, match="line 3: empty label"):
        load_dataset(write_csv(tmp_path, "x,label\n1,a\n2,\n"))
    with pytest.raises(DataError, match="line 2 has 3 cells"):
        load_dataset(write_csv(tmp_path, "x,label\n1,a,7\n", name="ragged.csv"))


# --------------------------------------------------------------------------- names, files, Dataset


def test_unknown_dataset_name():
    with pytest.raises(DataError) as info:
        load_dataset("cifar-1000")
    msg = str(info.value)
    assert all(name in msg for name in BUILTIN_DATASETS) and ".npz" in msg and ".csv" in msg


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(str(tmp_path / "absent.npz"))


def test_relative_path_under_data_dir(tmp_path):
    x, y = blobs(10)
    save_npz(tmp_path, X=x, y=y)
    assert load_dataset("data.npz", data_dir=tmp_path, test_fraction=0).pool_size == 10


def test_bad_test_fraction():
    with pytest.raises(DataError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.0)


def test_describe_digits():
    line = describe(load_dataset("digits"))
    assert line == "digits: pool 1437, validation 0, test 360, 10 classes, input 1x8x8"


def test_positions_maps_ids():
    ds = Dataset(
        name="t",
        x_train=np.zeros((4, 2), np.float32),
        y_train=np.array([0, 1, 0, 1]),
        class_names=("a", "b"),
        ids=np.array([40, 10, 30, 20], dtype=np.int64),
    )
    np.testing.assert_array_equal(ds.positions(np.array([10, 20, 30, 40])), [1, 3, 2, 0])
    with pytest.raises(DataError, match="unknown item ids"):
        ds.positions(np.array([10, 99]))
