"""Tests for cnnx.datasets.idx: exact round trips and a clear error for every bad file."""

import gzip
import struct
import tracemalloc

import numpy as np
import pytest

from cnnx.datasets.idx import DEFAULT_MAX_BYTES, read_idx, write_idx
from cnnx.errors import DatasetError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def header(code, shape):
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def sample_array(dtype, shape, seed=0):
    """Values covering the dtype's extremes (and NaN/inf/-0.0 for floats)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    if dtype.kind == "f":
        values = rng.standard_normal(n).astype(dtype) * dtype.type(1e3)
        specials = np.array(
            [np.nan, np.inf, -np.inf, -0.0, np.finfo(dtype).max, np.finfo(dtype).tiny], dtype=dtype
        )
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=dtype)
        specials = np.array([info.min, info.max, 0, 1], dtype=dtype)
    k = min(n, specials.size)
    values[:k] = specials[:k]
    return values.reshape(shape)


def assert_messages_name(excinfo, path, *fragments):
    message = str(excinfo.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2), (0, 28, 28)])
def test_round_trip_is_exact(tmp_path, dtype, suffix, shape):
    array = sample_array(dtype, shape)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    assert back.shape == shape
    assert back.flags.writeable
    assert back.tobytes() == array.tobytes()  # bit-exact, NaN payloads and -0.0 included
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


@pytest.mark.parametrize("dtype", [">i2", ">i4", ">f4", ">f8", "<i2", "<f8"])
def test_round_trip_from_either_byte_order(tmp_path, dtype):
    array = sample_array(np.dtype(dtype).newbyteorder("="), (4, 3)).astype(dtype)
    write_idx(tmp_path / "a.idx", array)
    back = read_idx(tmp_path / "a.idx")
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_write_produces_the_documented_bytes(tmp_path):
    write_idx(tmp_path / "u8", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    assert (tmp_path / "u8").read_bytes() == (
        b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03\x01\x02\x03\x04\x05\x06"
    )
    write_idx(tmp_path / "i16", np.array([1, -2], dtype=np.int16))
    assert (tmp_path / "i16").read_bytes() == b"\x00\x00\x0b\x01\x00\x00\x00\x02\x00\x01\xff\xfe"
    write_idx(tmp_path / "f32", np.array([1.0], dtype=np.float32))
    assert (tmp_path / "f32").read_bytes() == b"\x00\x00\x0d\x01\x00\x00\x00\x01\x3f\x80\x00\x00"


def test_reads_hand_made_file(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(header(0x08, (4,)) + bytes([7, 2, 1, 0]))
    np.testing.assert_array_equal(read_idx(path), np.array([7, 2, 1, 0], dtype=np.uint8))


def test_gzip_detected_by_magic_not_by_name(tmp_path):
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    plain_named_gz = tmp_path / "plain.gz"
    plain_named_gz.write_bytes(header(0x0C, (2, 3)) + array.astype(">i4").tobytes())
    gz_named_plain = tmp_path / "compressed.idx"
    gz_named_plain.write_bytes(gzip.compress(plain_named_gz.read_bytes()))
    np.testing.assert_array_equal(read_idx(plain_named_gz), array)
    np.testing.assert_array_equal(read_idx(gz_named_plain), array)


def test_gzip_output_is_deterministic(tmp_path):
    array = sample_array(np.float32, (5, 5))
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_write_replaces_existing_file_atomically(tmp_path):
    path = tmp_path / "x.idx.gz"
    write_idx(path, np.zeros(3, dtype=np.uint8))
    write_idx(path, np.ones(4, dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(path), np.ones(4, dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.idx.gz"]


@pytest.mark.parametrize(
    ("array", "error", "match"),
    [
        (np.zeros(3, dtype=np.int64), TypeError, "int64"),
        (np.zeros(3, dtype=np.uint16), TypeError, "uint16"),
        (np.zeros(3, dtype=bool), TypeError, "bool"),
        ([1, 2, 3], TypeError, "numpy.ndarray"),
        (np.array(5, dtype=np.uint8), ValueError, "dimensions"),
        (np.zeros((1,) * 33, dtype=np.uint8), ValueError, "dimensions"),
    ],
)
def test_write_rejects_what_idx_cannot_hold(tmp_path, array, error, match):
    with pytest.raises(error, match=match):
        write_idx(tmp_path / "x", array)
    assert list(tmp_path.iterdir()) == []


# --- bad files ---------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError) as excinfo:
        read_idx(tmp_path / "nope")
    assert_messages_name(excinfo, tmp_path / "nope", "cannot open")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b"", ["is empty", "00 00 <dtype code> <ndim>"]),
        (b"\x00\x00", ["only 2 bytes"]),
        (b"PK\x03\x04rest", ["not an IDX file", "50 4b 03 04"]),
        (b"<!DOCTYPE html>", ["not an IDX file", "3c 21 44 4f"]),
        (b"\x00\x01\x08\x01\x00\x00\x00\x00", ["not an IDX file"]),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x05", ["unknown IDX dtype code 0x0A", "0x08 (uint8)"]),
        (b"\x00\x00\x08\x00", ["declares 0 dimensions", "expected 1 to 32"]),
        (b"\x00\x00\x08\xc8" + b"\x00" * 800, ["declares 200 dimensions"]),
        (
            b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00",
            ["truncated IDX header", "12 bytes", "found 6"],
        ),
    ],
)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_bad_header(tmp_path, content, fragments, compress):
    path = tmp_path / "bad-idx"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(DatasetError) as excinfo:
        read_idx(path)
    assert_messages_name(excinfo, path, *fragments)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_truncated_data(tmp_path, compress):
    content = header(0x08, (10, 28, 28)) + bytes(10 * 784 - 1)
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(DatasetError) as excinfo:
        read_idx(path)
    assert_messages_name(excinfo, path, "truncated", "10×28×28", "7840")


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_trailing_bytes(tmp_path, compress):
    content = header(0x0B, (3,)) + bytes(6) + b"\x00"
    path = tmp_path / "x"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(DatasetError) as excinfo:
        read_idx(path)
    assert_messages_name(excinfo, path, "trailing bytes", "int16")


def valid_gzip(n=2000):
    rng = np.random.default_rng(1)
    content = header(0x08, (n,)) + rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return gzip.compress(content)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="cut-in-deflate"),
        pytest.param(lambda b: b[:-4], id="cut-in-trailer"),
        pytest.param(lambda b: b[:-8] + bytes(a ^ 0xFF for a in b[-8:-4]) + b[-4:], id="bad-crc"),
        pytest.param(lambda b: b[:-4] + b"\x00\x00\x00\x00", id="bad-length"),
        pytest.param(
            lambda b: b[:20] + bytes(a ^ 0x55 for a in b[20:60]) + b[60:], id="garbled-deflate"
        ),
        pytest.param(lambda b: b + b"garbage", id="junk-after-stream"),
        pytest.param(lambda b: b[:2] + b"\x07" + b[3:], id="bad-method"),
        pytest.param(lambda b: b[:3], id="header-only"),
    ],
)
def test_corrupt_gzip(tmp_path, mutate):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(mutate(valid_gzip()))
    with pytest.raises(DatasetError) as excinfo:
        read_idx(path)
    assert_messages_name(excinfo, path)
    assert "gzip" in str(excinfo.value)


def test_valid_gzip_fixture_reads():
    # The corruption cases above start from this stream; make sure it is itself fine.
    assert gzip.decompress(valid_gzip())[:4] == b"\x00\x00\x08\x01"


def peak_traced_bytes(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_huge_declared_size_is_refused_before_allocating(tmp_path, compress):
    # 4294967295**3 bytes: far beyond any memory.
    content = header(0x08, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)) + bytes(16)
    path = tmp_path / "hostile"
    path.write_bytes(gzip.compress(content) if compress else content)

    def read():
        with pytest.raises(DatasetError) as excinfo:
            read_idx(path)
        assert_messages_name(excinfo, path, "more than the limit", str(DEFAULT_MAX_BYTES))

    assert peak_traced_bytes(read) < 1 << 20


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_large_claim_under_the_cap_allocates_only_what_is_there(tmp_path, compress):
    # 512 MiB declared (allowed by the 1 GiB default cap), 100 bytes present.
    content = header(0x0E, (1 << 26,)) + bytes(100)
    path = tmp_path / "liar"
    path.write_bytes(gzip.compress(content) if compress else content)

    def read():
        with pytest.raises(DatasetError) as excinfo:
            read_idx(path)
        assert_messages_name(excinfo, path, "truncated", str(1 << 29))

    assert peak_traced_bytes(read) < 4 << 20


def test_max_bytes_cap_is_inclusive(tmp_path):
    path = tmp_path / "x"
    write_idx(path, np.zeros(25, dtype=np.float32))  # 100 data bytes
    assert read_idx(path, max_bytes=100).shape == (25,)
    with pytest.raises(DatasetError, match="more than the limit of 99 bytes"):
        read_idx(path, max_bytes=99)


@pytest.mark.parametrize("max_bytes", [-1, 1.5, "10", True])
def test_max_bytes_must_be_a_non_negative_int(tmp_path, max_bytes):
    with pytest.raises(ValueError, match="max_bytes"):
        read_idx(tmp_path / "x", max_bytes=max_bytes)


def test_write_into_a_missing_directory_names_the_file_not_a_temporary_name(tmp_path):
    target = tmp_path / "nowhere" / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(FileNotFoundError) as info:
        write_idx(target, np.zeros(3, dtype=np.uint8))
    message = str(info.value)
    assert str(target) in message and str(target.parent) in message
    assert ".tmp-" not in message
    assert not (tmp_path / "nowhere").exists()
