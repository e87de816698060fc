"""A folder of images (PNG, JPEG) as a dataset: one subfolder per class for labeled images, or the
images directly in the folder for an unlabeled pool that people label.

Every image is converted to RGB and resized to ``size`` x ``size`` for the model (features in
[0, 1], shape (3, size, size)); the original file is kept for display, so people see the image as
it is, not the model's thumbnail. Item ids follow the sorted relative paths, so they are stable
while the folder does not change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calkit.data.assemble import _build
from calkit.data.dataset import Dataset
from calkit.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Side of the square the images are resized to for the model.
DEFAULT_IMAGE_SIZE = 32


def is_image_folder(path: Path) -> bool:
    return path.is_dir() and any(_images_in(path, recursive=True))


def load_image_folder(path: Path, test_fraction: float, size: int = DEFAULT_IMAGE_SIZE) -> Dataset:
    """Class subfolders make a labeled pool (with the usual fixed test split); images at the top
    level make an unlabeled one. A folder with both is refused: which do you mean?"""
    top = sorted(_images_in(path, recursive=False))
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and any(_images_in(d, recursive=True)))
    if top and classes:
        raise DataError(f"{path}: holds images at the top and in class folders ({', '.join(classes)}); put the "
                        "unlabeled pool in a folder of its own")
    if not top and not classes:
        raise DataError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in it or in its subfolders")
    if top:
        files = top
        y = None
        class_names = _class_names_for_unlabeled(path)
    else:
        if len(classes) < 2:
            raise DataError(f"{path}: one class folder ({classes[0]}); a classifier needs at least two")
        files, labels = [], []
        for index, name in enumerate(classes):
            found = sorted(_images_in(path / name, recursive=True))
            files += found
            labels += [index] * len(found)
        y = np.array(labels, dtype=np.int64)
        class_names = tuple(classes)
    x = np.stack([_pixels(f, size) for f in files])
    ids = np.arange(len(files), dtype=np.int64)
    return _build(path.name, x, y, class_names, ids, test_fraction, files=[str(f) for f in files])


def _class_names_for_unlabeled(path: Path) -> tuple[str, ...]:
    """An unlabeled pool's classes come from ``classes.txt`` beside the images, one per line."""
    listing = path / "classes.txt"
    if not listing.is_file():
        raise DataError(f"{path}: an unlabeled folder of images needs classes.txt, the class names one per line")
    names = tuple(line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) < 2:
        raise DataError(f"{listing}: needs at least two class names, one per line")
    return names


def _images_in(folder: Path, recursive: bool):
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return (p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _pixels(path: Path, size: int) -> np.ndarray:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise DataError("reading a folder of images needs Pillow: pip install 'calkit[images]'") from exc

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    return (np.asarray(rgb, dtype=np.float32) / 255.0).transpose(2, 0, 1).copy()
