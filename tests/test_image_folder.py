"""A folder of images as a dataset: class subfolders or an unlabeled pool, originals kept for display."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from calkit import Run, load_dataset
from calkit.errors import DataError

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 40, 210)}


def _folder(root: Path, per_class: int = 12, labeled: bool = True) -> Path:
    """Noisy squares of three colours, of two sizes and two formats."""
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        folder = root / name if labeled else root
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            side = 20 if k % 2 else 48
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, size=(side, side, 3)), 0, 255).astype(np.uint8)
            suffix = ".png" if k % 3 else ".jpg"
            Image.fromarray(pixels).save(folder / f"{name}-{k:02d}{suffix}")
    if not labeled:
        (root / "classes.txt").write_text("\n".join(COLOURS) + "\n")
    return root


def test_class_folders_make_a_labeled_pool_with_originals_for_display(tmp_path):
    ds = load_dataset(str(_folder(tmp_path / "colours")), val_fraction=0.0)
    assert ds.class_names == ("blue", "green", "red")
    assert ds.input_shape == (3, 32, 32) and ds.x_train.dtype == np.float32
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.pool_size + len(ds.y_test) == 36
    item = int(ds.ids[0])
    shown = ds.display(item)
    assert isinstance(shown, Path) and shown.exists() and shown.parent.name == ds.class_names[ds.y_train[0]]
    red = ds.x_train[ds.y_train == 2]
    assert red[:, 0].mean() > red[:, 2].mean() + 0.3  # the pixels are the image's, channels in order


def test_a_flat_folder_is_an_unlabeled_pool_that_people_label(tmp_path):
    folder = _folder(tmp_path / "pool", labeled=False)
    run = Run.create(tmp_path / "run", dataset=str(folder), oracle="people", initial=6, round_size=3, rounds=2,
                     epochs=1, model="mlp:16")
    items = run.pending()
    assert len(items) == 6 and all(isinstance(i.display, Path) and i.display.suffix in (".png", ".jpg") for i in items)
    run.submit({i.id: i.display.name.split("-")[0] for i in items}, annotator="ana")  # the colour in the name
    assert run.advance().state == "awaiting_labels" and len(run.metrics()) == 1
    run.close()


@pytest.mark.parametrize("layout, message", [
    ("mixed", "holds images at the top and in class folders"),
    ("one-class", "one class folder"),
    ("no-classes-txt", "needs classes.txt"),
    ("broken", "not a readable image"),
])
def test_bad_folders_are_refused_with_what_to_do(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout == "mixed":
        _folder(root)
        Image.new("RGB", (4, 4)).save(root / "stray.png")
    elif layout == "one-class":
        (root / "only").mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(root / "only" / "a.png")
    elif layout == "no-classes-txt":
        root.mkdir()
        Image.new("RGB", (4, 4)).save(root / "a.png")
    else:
        _folder(root, per_class=2)
        (root / "red" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=message):
        load_dataset(str(root))
