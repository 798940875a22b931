"""Reading and writing IDX files, the format of the MNIST distribution.

An IDX file is a 4-byte magic number, ``00 00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the array data, big-endian, in C order. Files are often
gzipped; :func:`read_idx` recognises gzip by its magic bytes, not by the file name.

:func:`read_idx` treats the file as untrusted: every header field is checked, the size a
header declares is capped before anything is allocated, gzip data is decompressed only up
to the declared size plus one byte, and each problem is a :class:`~cnnx.errors.DatasetError`
naming the file, what was found and what was expected.
"""

from __future__ import annotations

import errno
import gzip
import math
import os
import struct
import zlib
from typing import BinaryIO

import numpy as np

from cnnx.errors import DatasetError
from cnnx.utils.atomic import atomic_write

__all__ = ["DEFAULT_MAX_BYTES", "IDX_DTYPES", "MAX_NDIM", "read_idx", "write_idx"]

#: Default cap on the data size (in bytes) a header may declare: 1 GiB.
DEFAULT_MAX_BYTES = 1 << 30

#: Most dimensions a header may declare (every NumPy version supports 32).
MAX_NDIM = 32

#: IDX dtype code -> element type.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(np.int16),
    0x0C: np.dtype(np.int32),
    0x0D: np.dtype(np.float32),
    0x0E: np.dtype(np.float64),
}
_DTYPE_CODES = {dtype: code for code, dtype in IDX_DTYPES.items()}
_EXPECTED_CODES = ", ".join(f"0x{code:02X} ({dtype})" for code, dtype in IDX_DTYPES.items())

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_UINT32_MAX = 0xFFFFFFFF


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read an IDX file, gzipped or not, into a native-endian array.

    Args:
        path: the file. Gzip is detected from the first two bytes (``1f 8b``).
        max_bytes: largest data size, in bytes, a header may declare. Checked before
            any data is read, so a hostile header cannot exhaust memory.

    Returns:
        An array with the header's shape and dtype (uint8, int8, int16, int32, float32 or
        float64), native byte order, writable.

    Raises:
        DatasetError: the file cannot be opened or read, is not IDX (wrong magic), has an
            unknown dtype code, 0 or more than ``MAX_NDIM`` dimensions, declares more than
            ``max_bytes`` of data, holds fewer or more data bytes than declared, or is a
            corrupt gzip stream. The message names the file.
        ValueError: ``max_bytes`` is not a non-negative integer.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"read_idx: max_bytes must be a non-negative int, got {max_bytes!r}")
    name = os.fspath(path)
    try:
        raw = open(name, "rb")
    except OSError as e:
        raise DatasetError(f"{name}: cannot open IDX file: {e.strerror or e}") from e
    with raw:
        try:
            is_gzip = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            file_size = None if is_gzip else os.fstat(raw.fileno()).st_size
        except OSError as e:
            raise DatasetError(f"{name}: cannot read IDX file: {e.strerror or e}") from e
        if not is_gzip:
            try:
                return _parse(raw, name, max_bytes, file_size=file_size)
            except OSError as e:
                raise DatasetError(f"{name}: cannot read IDX file: {e.strerror or e}") from e
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(stream, f"{name} (gzip)", max_bytes, file_size=None)
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetError(
                f"{name}: corrupt gzip stream ({type(e).__name__}: {e}); "
                "expected a complete gzip file holding one IDX file"
            ) from e


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, atomically; gzipped when the name ends with ``.gz``.

    The gzip header carries no file name and a zero timestamp, so the same array always
    gives the same bytes.

    Args:
        path: destination file. An existing file is replaced only once the new one is
            complete (see :func:`cnnx.utils.atomic.atomic_write`).
        array: a NumPy array of dtype uint8, int8, int16, int32, float32 or float64 (any
            byte order) with 1 to ``MAX_NDIM`` dimensions, each smaller than 2**32.

    Raises:
        TypeError: ``array`` is not a NumPy array or its dtype has no IDX code.
        ValueError: ``array`` has 0 or too many dimensions, or a dimension of 2**32 or more.
        FileNotFoundError: the directory ``path`` would go in does not exist.
    """
    header, big_endian = _encode_header(array)
    # Flat bytes, no copy when the array is already contiguous and big-endian.
    data = np.ascontiguousarray(array, dtype=big_endian).reshape(-1).view(np.uint8)
    name = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(parent):
        # atomic_write would fail on its hidden temporary name, which means nothing to
        # the caller; name the file asked for and the directory that is missing
        raise FileNotFoundError(
            errno.ENOENT, f"write_idx: cannot write {name}: no directory {parent}", name
        )
    with atomic_write(name, "wb") as f:
        if name.lower().endswith(".gz"):
            with gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as gz:
                gz.write(header)
                gz.write(data)
        else:
            f.write(header)
            f.write(data)


def _encode_header(array: np.ndarray) -> tuple[bytes, np.dtype]:
    """Return the IDX header of ``array`` and its big-endian element dtype."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"write_idx: array must be a numpy.ndarray, got {type(array).__name__}")
    native = array.dtype.newbyteorder("=") if array.dtype.byteorder != "|" else array.dtype
    code = _DTYPE_CODES.get(native)
    if code is None:
        raise TypeError(
            f"write_idx: IDX cannot store dtype {array.dtype}; supported: "
            "uint8, int8, int16, int32, float32, float64 (cast explicitly)"
        )
    if not 1 <= array.ndim <= MAX_NDIM:
        raise ValueError(f"write_idx: array must have 1 to {MAX_NDIM} dimensions, got {array.ndim}")
    if any(size > _UINT32_MAX for size in array.shape):
        raise ValueError(f"write_idx: every dimension must be < 2**32, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header, native.newbyteorder(">")


def _parse(stream: BinaryIO, name: str, max_bytes: int, *, file_size: int | None) -> np.ndarray:
    """Parse one IDX file from ``stream``; ``file_size`` is known only for plain files."""
    magic = _read_at_most(stream, 4)
    if len(magic) < 4:
        what = "is empty" if not magic else f"has only {len(magic)} bytes"
        raise DatasetError(
            f"{name}: not an IDX file: it {what}; expected at least a 4-byte header "
            "00 00 <dtype code> <ndim>"
        )
    if magic[0] != 0 or magic[1] != 0:
        raise DatasetError(
            f"{name}: not an IDX file: starts with bytes {magic.hex(' ')}; "
            "expected 00 00 <dtype code> <ndim>"
        )
    code, ndim = magic[2], magic[3]
    dtype = IDX_DTYPES.get(code)
    if dtype is None:
        raise DatasetError(
            f"{name}: unknown IDX dtype code 0x{code:02X}; expected one of {_EXPECTED_CODES}"
        )
    if not 1 <= ndim <= MAX_NDIM:
        raise DatasetError(
            f"{name}: IDX header declares {ndim} dimensions; expected 1 to {MAX_NDIM}"
        )
    size_bytes = _read_at_most(stream, 4 * ndim)
    if len(size_bytes) < 4 * ndim:
        raise DatasetError(
            f"{name}: truncated IDX header: {ndim} dimensions need {4 * ndim} bytes of sizes "
            f"after the magic, found {len(size_bytes)}"
        )
    shape = struct.unpack(f">{ndim}I", size_bytes)
    nbytes = math.prod(shape) * dtype.itemsize
    shape_text = "×".join(str(s) for s in shape)
    if nbytes > max_bytes:
        raise DatasetError(
            f"{name}: IDX header declares a {shape_text} {dtype} array ({nbytes} bytes), "
            f"more than the limit of {max_bytes} bytes; the header is corrupt, or pass a "
            "larger max_bytes to read_idx"
        )
    header_len = 4 + 4 * ndim
    if file_size is not None:
        # Plain file: compare sizes before allocating anything.
        expected = header_len + nbytes
        if file_size != expected:
            problem = "truncated" if file_size < expected else "trailing bytes after the data"
            raise DatasetError(
                f"{name}: {problem}: the header declares a {shape_text} {dtype} array, so the "
                f"file should have {expected} bytes ({header_len} header + {nbytes} data), "
                f"but it has {file_size}"
            )
    data = _read_at_most(stream, nbytes)
    if len(data) < nbytes:
        raise DatasetError(
            f"{name}: truncated: the header declares a {shape_text} {dtype} array of "
            f"{nbytes} data bytes, but only {len(data)} follow the header"
        )
    if stream.read(1):
        raise DatasetError(
            f"{name}: trailing bytes after the data: the header declares a {shape_text} "
            f"{dtype} array of {nbytes} data bytes, and more follow"
        )
    array = np.frombuffer(data, dtype=dtype.newbyteorder(">")).reshape(shape)
    if dtype.itemsize > 1:
        return array.astype(dtype)  # native byte order; a fresh, writable copy
    return array  # a view of the bytearray: already writable


def _read_at_most(stream: BinaryIO, n: int) -> bytearray:
    """Read up to ``n`` bytes in chunks, so memory grows only with data actually present."""
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf
