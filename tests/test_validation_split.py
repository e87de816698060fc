"""The validation split: carved from a labeled pool (fixed, stratified, never selectable) or given by
the data (``X_val``/``y_val`` in an .npz, a ``split`` column in a CSV), and measured every round."""

from __future__ import annotations

import numpy as np
import pytest

from calkit import ActiveLoop, RunConfig, load_dataset
from calkit.data.assemble import carve_validation
from calkit.errors import ConfigError, DataError
from calkit.ledger import Ledger
from tests.conftest import make_blobs


def test_a_labeled_pool_gives_a_fixed_stratified_share_to_validation():
    ds = make_blobs(n_pool=200, n_classes=4)
    carved = carve_validation(ds, 0.2)
    assert (carved.pool_size, carved.x_val.shape[0]) == (160, 40)
    assert np.bincount(carved.y_val).tolist() == [10, 10, 10, 10]  # stratified
    again = carve_validation(ds, 0.2)
    assert again.ids.tolist() == carved.ids.tolist() and np.array_equal(again.x_val, carved.x_val)  # fixed
    val_ids = np.setdiff1d(ds.ids, carved.ids)
    assert len(val_ids) == 40, "validation items leave the pool, so no acquisition can select them"
    rows = {tuple(r) for r in ds.x_train[np.isin(ds.ids, val_ids)].tolist()}
    assert rows == {tuple(r) for r in carved.x_val.tolist()}
    assert np.array_equal(carved.x_test, ds.x_test), "the test split is untouched"


def test_nothing_is_carved_from_an_unlabeled_pool_a_given_split_or_a_zero_fraction():
    ds = make_blobs(n_pool=100)
    assert carve_validation(ds, 0.0) is ds
    given = make_blobs(n_pool=100, n_val=30)
    assert carve_validation(given, 0.2) is given
    unlabeled = make_blobs(n_pool=100).__class__(name="u", x_train=ds.x_train, y_train=None, class_names=ds.class_names,
                                                 ids=ds.ids)
    assert carve_validation(unlabeled, 0.2) is unlabeled


def test_builtin_digits_have_a_validation_split_by_default():
    ds = load_dataset("digits")
    assert (ds.pool_size, ds.x_val.shape[0], ds.x_test.shape[0]) == (1149, 288, 360)
    assert load_dataset("digits", val_fraction=0).pool_size == 1437
    with pytest.raises(DataError, match="val_fraction"):
        load_dataset("digits", val_fraction=1.0)


def test_an_npz_brings_its_own_validation_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    path = tmp_path / "mine.npz"
    np.savez(path, X=x, y=np.array(["a", "b"] * 20), X_val=x[:6] + 10, y_val=np.array(["b"] * 5 + ["c"]),
             X_test=x[:4], y_test=np.array(["a"] * 4))
    ds = load_dataset(path)
    assert ds.pool_size == 40 and ds.x_val.shape == (6, 3), "a given split is kept, nothing is carved"
    assert ds.class_names == ("a", "b", "c") and ds.y_val.tolist() == [1] * 5 + [2]  # one encoding for all splits
    np.savez(path, X=x, y=np.arange(40) % 2, X_val=x[:6])
    with pytest.raises(DataError, match="needs both X_val and y_val"):
        load_dataset(path)
    np.savez(path, X=x, y=np.arange(40) % 2, X_val=x[:6, :2], y_val=np.zeros(6, dtype=int))
    with pytest.raises(DataError, match="X_val items have shape"):
        load_dataset(path)


def test_a_csv_split_column_names_the_splits(tmp_path):
    lines = ["x1,x2,label,split"] + [f"{i},{i % 5},{'ab'[i % 2]},{['train', 'val', 'test', ''][i % 4]}" for i in range(40)]
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(lines) + "\n")
    ds = load_dataset(path)
    assert (ds.pool_size, ds.x_val.shape[0], ds.x_test.shape[0]) == (20, 10, 10)
    assert ds.input_shape == (2,), "split is not a feature"
    assert ds.x_val[:, 0].tolist() == [float(i) for i in range(1, 40, 4)]
    path.write_text("x1,label,split\n1,a,train\n2,b,holdout\n")
    with pytest.raises(DataError, match="line 3.*'holdout'"):
        load_dataset(path)


def test_every_round_logs_validation_beside_test_accuracy(tmp_path):
    cfg = RunConfig(dataset="blobs", model="mlp:16", initial=20, round_size=10, rounds=3, epochs=2, batch_size=8)
    loop = ActiveLoop.create(tmp_path / "r", cfg, dataset=make_blobs(n_val=30))
    assert loop.run().complete
    records = loop.ledger.metrics()
    loop.close()
    assert all(0.0 <= r["val_accuracy"] <= 1.0 and r["val_macro_f1"] is not None for r in records)
    assert all(r["test_accuracy"] is not None for r in records)
    bare = ActiveLoop.create(tmp_path / "n", cfg, dataset=make_blobs())
    assert bare.run().complete
    assert all(r["val_accuracy"] is None for r in bare.ledger.metrics())
    bare.close()


def test_validation_items_are_never_queried(tmp_path):
    cfg = RunConfig(dataset="digits", model="mlp:32", initial=100, round_size=200, rounds=6, epochs=1)
    loop = ActiveLoop.create(tmp_path / "d", cfg)
    assert loop.run().complete
    loop.close()
    everything = load_dataset("digits", val_fraction=0)
    carved = load_dataset("digits")
    val_ids = set(np.setdiff1d(everything.ids, carved.ids).tolist())
    with Ledger.open(tmp_path / "d" / "ledger.sqlite") as ledger:
        asked = set(ledger.queried_ids().tolist())
    assert len(asked) == 1100 and not asked & val_ids


def test_config_rejects_a_bad_val_fraction():
    with pytest.raises(ConfigError, match="val-fraction"):
        RunConfig(rounds=2, val_fraction=1.5).validate()
