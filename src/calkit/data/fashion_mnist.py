"""Fashion-MNIST from the IDX files on disk (Debian's ``dataset-fashion-mnist``); nothing is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from calkit.data.dataset import Dataset
from calkit.data.idx import read_idx
from calkit.errors import DataError

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


