"""Property tests of read_idx on hostile input: random bytes and mutated valid files.

Every outcome must be either a correct array or a DatasetError with a message naming the
file; never another exception, never a large allocation. "Correct" is checked against an
encoder written here independently of write_idx: the array read must re-encode to exactly
the (decompressed) bytes of the file.

Runs are derandomized (fixed examples in the same order every time), so CI is repeatable.
See the example counts with ``pytest tests/test_idx_fuzz.py --hypothesis-show-statistics``.
"""

import gzip
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnnx.datasets.idx import read_idx
from cnnx.errors import DatasetError

FUZZ_SETTINGS = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
DTYPE_CODES = {np.dtype(v).newbyteorder("="): k for k, v in CODES.items()}

# Inputs here are at most a few kB; a reader that trusted a header could ask for up to
# the 1 GiB default cap. Anything above this means it allocated for data that is not there.
PEAK_LIMIT = 8 << 20


def encode(array):
    """Independent IDX encoder: header + big-endian C-order data."""
    code = DTYPE_CODES[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(CODES[code]).tobytes()


ERROR_KINDS = (
    "not an IDX file",
    "unknown IDX dtype",
    "truncated IDX header",
    "dimensions",
    "more than the limit",
    "truncated",
    "trailing bytes",
    "corrupt gzip",
)


@pytest.fixture(scope="module")
def case_path(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "case.idx"


def check(path, content):
    """Read ``content`` from ``path``; assert the outcome is a correct array or a clean error."""
    # A fresh file each time: rewriting one in place is ~20x slower on ext4 (flush on
    # truncate), which would dominate the run time.
    path.write_bytes(content)
    tracemalloc.start()
    try:
        result = read_idx(path)
    except DatasetError as e:
        message = str(e)
        assert message.strip()
        assert str(path) in message
        kind = next((k for k in ERROR_KINDS if k in message), None)
        assert kind is not None, f"unexpected message: {message}"
        event(f"DatasetError: {kind}")
        result = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        path.unlink()
    assert peak < PEAK_LIMIT, f"read_idx allocated {peak} bytes for a {len(content)}-byte file"
    if result is not None:
        event("array")
        assert result.dtype.isnative and result.flags.writeable
        plain = gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content
        assert encode(result) == plain
    return result


def idx_arrays():
    dtypes = st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
    shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)
    return st.builds(lambda d, s: (d, s), dtypes, shapes).flatmap(
        lambda ds: hnp.arrays(ds[0], ds[1])
    )


@FUZZ_SETTINGS
@given(content=st.binary(max_size=600))
def test_random_bytes(case_path, content):
    check(case_path, content)


@FUZZ_SETTINGS
@given(
    code=st.one_of(st.sampled_from(sorted(CODES)), st.integers(0, 255)),
    dims=st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), min_size=0, max_size=6),
    ndim_override=st.one_of(st.none(), st.integers(0, 255)),
    body=st.binary(max_size=400),
    compress=st.booleans(),
)
def test_plausible_header_random_body(case_path, code, dims, ndim_override, body, compress):
    ndim = len(dims) if ndim_override is None else ndim_override
    content = bytes([0, 0, code, ndim]) + b"".join(struct.pack(">I", d) for d in dims) + body
    check(case_path, gzip.compress(content, mtime=0) if compress else content)


@st.composite
def mutations(draw, size):
    kind = draw(st.sampled_from(["none", "flip", "truncate", "extend", "magic", "dim"]))
    if kind == "flip":
        return kind, draw(st.integers(0, size - 1)), draw(st.integers(1, 255))
    if kind == "truncate":
        return kind, draw(st.integers(0, size - 1)), None
    if kind == "extend":
        return kind, None, draw(st.binary(min_size=1, max_size=64))
    if kind == "magic":
        return kind, draw(st.integers(0, 3)), draw(st.integers(0, 255))
    if kind == "dim":
        return (
            kind,
            draw(st.integers(0, 5)),
            draw(st.one_of(st.integers(0, 8), st.integers(0, 2**32 - 1))),
        )
    return kind, None, None


def mutate(content, mutation):
    kind, where, what = mutation
    data = bytearray(content)
    if kind == "flip":
        data[where] ^= what
    elif kind == "truncate":
        del data[where:]
    elif kind == "extend":
        data += what
    elif kind == "magic":
        data[where] = what
    elif kind == "dim":
        ndim = data[3]
        if where < ndim:
            data[4 + 4 * where : 8 + 4 * where] = struct.pack(">I", what)
    return bytes(data)


@FUZZ_SETTINGS
@given(
    array=idx_arrays(),
    compress=st.sampled_from(["plain", "gzip-then-mutate", "mutate-then-gzip"]),
    data=st.data(),
)
def test_mutated_valid_file(case_path, array, compress, data):
    plain = encode(array)
    if compress == "plain":
        content = plain
    elif compress == "mutate-then-gzip":
        content = gzip.compress(mutate(plain, data.draw(mutations(len(plain)))), mtime=0)
        plain = None
    else:
        content = gzip.compress(plain, mtime=0)
    if compress != "mutate-then-gzip":
        mutation = data.draw(mutations(len(content)))
        content = mutate(content, mutation)
        if mutation[0] == "none":
            result = check(case_path, content)
            assert result is not None
            assert result.tobytes() == array.tobytes()
            return
    check(case_path, content)


@FUZZ_SETTINGS
@given(array=idx_arrays(), level=st.integers(0, 9), junk=st.binary(max_size=8))
def test_gzip_variants_of_valid_file(case_path, array, level, junk):
    """Any compression level reads back; bytes after the gzip stream are never ignored
    silently unless they are the zero padding gzip itself allows."""
    content = gzip.compress(encode(array), compresslevel=level, mtime=0) + junk
    result = check(case_path, content)
    if junk.strip(b"\x00") == b"":
        assert result is not None and result.tobytes() == array.tobytes()
    else:
        assert result is None


@FUZZ_SETTINGS
@given(raw=st.binary(min_size=1, max_size=300))
def test_raw_deflate_behind_gzip_magic(case_path, raw):
    """A gzip magic followed by random bytes, or a real deflate stream of random bytes."""
    check(case_path, b"\x1f\x8b" + raw)
    wrapper = zlib.compressobj(wbits=31)
    check(case_path, wrapper.compress(raw) + wrapper.flush())
