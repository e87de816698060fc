"""How an item is shown to a person: an image, a text, or a table of features.

Arrays shaped like images (``(C, H, W)`` with 1 or 3 channels) become PNGs, scaled up by a
whole factor with nearest-neighbour sampling so that small images stay crisp; an image folder's
items are served as their own files. Text is returned as text (the page renders it as text,
never as markup); anything else is a table of features.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

#: Rendered images are scaled up to about this many pixels on their longer side.
TARGET_PIXELS = 256
#: Image files are served with these types, chosen by suffix; other files are not served.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".bmp": "image/bmp", ".webp": "image/webp"}
#: Longest text shown in full; longer text is cut with a note.
MAX_TEXT = 20_000


def describe(display: object) -> dict:
    """The JSON the labeling screen renders for one item's ``display`` value (no image bytes)."""
    if isinstance(display, str):
        cut = len(display) > MAX_TEXT
        return {"kind": "text", "text": display[:MAX_TEXT], "truncated": cut}
    if isinstance(display, Path):
        return {"kind": "image"}
    array = np.asarray(display)
    if is_image(array):
        return {"kind": "image"}
    flat = array.reshape(-1)
    return {"kind": "table", "features": [float(v) for v in flat[:200]], "total": int(flat.size)}


def is_image(array: np.ndarray) -> bool:
    return array.ndim == 3 and array.shape[0] in (1, 3) and min(array.shape[1:]) >= 2


def image_bytes(display: object) -> tuple[bytes, str]:
    """(bytes, media type) of an item shown as an image; ValueError for other items."""
    if isinstance(display, Path):
        media = IMAGE_TYPES.get(display.suffix.lower())
        if media is None:
            raise ValueError(f"{display.name} is not an image file calkit serves")
        return display.read_bytes(), media
    array = np.asarray(display, dtype=np.float64)
    if not is_image(array):
        raise ValueError("this item is not an image")
    return png_from_array(array), "image/png"


def png_from_array(array: np.ndarray) -> bytes:
    """A ``(C, H, W)`` array as a PNG, its values stretched to 0-255 and scaled up crisply."""
    from PIL import Image

    low, high = float(array.min()), float(array.max())
    scaled = np.zeros_like(array) if high <= low else (array - low) / (high - low)
    pixels = np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else np.transpose(pixels, (1, 2, 0)))
    factor = max(1, TARGET_PIXELS // max(image.size))
    if factor > 1:
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
