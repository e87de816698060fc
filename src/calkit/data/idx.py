"""Reader for IDX files, the container format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order, big-endian.
Files may be gzip-compressed; we detect that from the content, not the name, so a
decompressed file that kept its ``.gz`` name (or the reverse) still reads.

We validate everything we can, because a truncated download otherwise turns into a
confusing reshape error (or, worse, silently wrong data) far away from the file.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from calkit.errors import DataError

#: IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip) into a writable, native-byte-order array.

    Raises :class:`DataError` naming the file when it is missing, is not IDX, or its
    payload does not match the shape declared in its header.
    """
    path = Path(path)
    raw = _read_bytes(path)
    dtype, shape, offset = _parse_header(path, raw)
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    found = len(raw) - offset
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{path}: IDX file {what}: header declares shape {shape} of {dtype.name} "
            f"({expected} data bytes) but the file holds {found} data bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=offset, count=expected // dtype.itemsize)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def _read_bytes(path: Path) -> bytes:
    """Whole file content, decompressed when it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data: {exc}") from None


def _parse_header(path: Path, raw: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, data offset) from the IDX header, validated."""
    if len(raw) < 4:
        raise DataError(f"{path}: not an IDX file (only {len(raw)} bytes, no header)")
    zero1, zero2, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero1 != 0 or zero2 != 0:
        raise DataError(f"{path}: not an IDX file (magic number {raw[:4].hex()} does not start with 0000)")
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions")
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"{path}: IDX header truncated: {ndim} dimensions need {offset} bytes, file has {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:offset])
    return IDX_DTYPES[code], tuple(int(s) for s in shape), offset
