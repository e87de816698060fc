"""Shared fixtures: small synthetic datasets the tests make themselves (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest

from calkit.data import Dataset


def make_blobs(n_pool: int = 240, n_test: int = 90, n_features: int = 6, n_classes: int = 3, seed: int = 0,
               spread: float = 1.0, name: str = "blobs", n_val: int = 0) -> Dataset:
    """Gaussian blobs, one per class: learnable in a few epochs by a small MLP (unless ``spread``
    makes them overlap). ``n_val`` items form a validation split."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3.0, size=(n_classes, n_features))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % n_classes
        rng.shuffle(y)
        x = centers[y] + rng.normal(0, spread, size=(n, n_features))
        return x.astype(np.float32), y.astype(np.int64)

    x, y = draw(n_pool)
    xt, yt = draw(n_test)
    xv, yv = draw(n_val) if n_val else (None, None)
    return Dataset(
        name=name,
        x_train=x,
        y_train=y,
        class_names=tuple(f"c{i}" for i in range(n_classes)),
        ids=np.arange(1000, 1000 + n_pool, dtype=np.int64),
        x_test=xt,
        y_test=yt,
        x_val=xv,
        y_val=yv,
    )


@pytest.fixture
def blobs() -> Dataset:
    return make_blobs()


def save_npz(ds: Dataset, path):
    """A dataset as a user .npz file (what a run given a path loads again); returns the path."""
    np.savez(path, X=ds.x_train, y=ds.y_train, X_test=ds.x_test, y_test=ds.y_test,
             ids=ds.ids, class_names=np.array(ds.class_names))
    return path


@pytest.fixture
def blobs_npz(tmp_path):
    """The blobs dataset saved as a user .npz file; returns its path."""
    return save_npz(make_blobs(), tmp_path / "blobs.npz")


def people_app(tmp_path, dataset="digits", **settings):
    """The labeling application over a fresh people-oracle run (a generator for fixtures:
    ``yield from people_app(tmp_path, **QUICK)``), closed afterwards."""
    from calkit import Run
    from calkit.web.app import create_app

    Run.create(tmp_path / "run", dataset=dataset, **{"oracle": "people", **settings}).close()
    app = create_app(tmp_path / "run")
    yield app
    app.state.run.close()
