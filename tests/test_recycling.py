"""Recycled CPU arrays (cnnx.backends.recycling) against NumPy's own, and when memory is reused.

A recycled array must behave like a fresh one (shape, dtype, memory order, zeros where
asked), and its memory must never be handed out again while any array that can read or
write it is alive.
"""

from __future__ import annotations

import gc
import os
import threading

import numpy as np
import pytest

from cnnx.backends import primitives as P
from cnnx.backends import recycling


@pytest.fixture(autouse=True)
def recycle_everything(monkeypatch):
    """Recycle arrays of any size, starting from an empty store of idle blocks."""
    monkeypatch.setattr(recycling, "RECYCLE_MIN_BYTES", 1)
    recycling.release_idle()
    gc.collect()
    yield
    recycling.release_idle()


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4, 5), 7, (0, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_empty_and_zeros_agree_with_plain(shape, dtype):
    dirty = recycling.empty(shape, dtype)
    dirty[...] = 7
    del dirty  # its block is idle now, full of sevens
    for recycled, plain in [
        (recycling.zeros(shape, dtype), recycling.zeros_plain(shape, dtype)),
        (recycling.empty(shape, dtype), recycling.empty_plain(shape, dtype)),
    ]:
        assert recycled.shape == plain.shape
        assert recycled.dtype == plain.dtype
        assert recycled.strides == plain.strides
        assert recycled.flags.c_contiguous and recycled.flags.writeable
    zeros = recycling.zeros(shape, dtype)
    np.testing.assert_array_equal(zeros, recycling.zeros_plain(shape, dtype))


def test_memory_is_reused_once_the_array_is_gone():
    a = recycling.empty((64, 64), np.float32)
    first = address(a)
    del a
    b = recycling.empty((64, 64), np.float32)
    assert address(b) == first
    assert recycling.idle_bytes() == 0


def test_same_bytes_in_another_shape_and_dtype_reuse_the_block():
    a = recycling.empty((64, 64), np.float32)
    first = address(a)
    del a
    b = recycling.empty((128, 128), np.uint8)
    assert address(b) == first


@pytest.mark.parametrize(
    "make_view",
    [
        lambda a: a.T,
        lambda a: a[1:, ::2],
        lambda a: a.reshape(-1)[3:].reshape(-1, 1),
        lambda a: a.T[2:].T[:, 1:],  # a view of a view of a view
        lambda a: np.asarray(a),
        lambda a: a.view(np.uint8),
        lambda a: memoryview(a),
        lambda a: np.frombuffer(a, dtype=np.float32),
        lambda a: np.lib.stride_tricks.as_strided(a, shape=(2, 2), strides=(8, 4)),
    ],
    ids=["T", "slice", "reshape", "views-of-views", "asarray", "view-dtype", "memoryview",
         "frombuffer", "as_strided"],
)
def test_memory_is_not_reused_while_a_view_is_alive(make_view):
    a = recycling.empty((32, 16), np.float32)
    first = address(a)
    view = make_view(a)
    del a
    gc.collect()
    b = recycling.empty((32, 16), np.float32)
    assert address(b) != first, "handed out memory that a live view still uses"
    b[...] = 1
    del b
    del view
    c = recycling.empty((32, 16), np.float32)
    d = recycling.empty((32, 16), np.float32)
    # Both blocks are idle again: the two requests take them both.
    assert {address(c), address(d)} >= {first}


def test_a_result_kept_by_the_caller_is_not_overwritten_by_later_calls():
    # The input gradient of a convolution, held (a hook, a list) while training goes on.
    rng = np.random.default_rng(0)
    x_shape, kernel, stride, padding = (4, 3, 10, 10), (3, 3), (1, 1), (1, 1)
    wt = rng.standard_normal((27, 5), dtype=np.float32)
    gy = rng.standard_normal((5, 10 * 10 * 4), dtype=np.float32)
    kept = P.col2im_matmul(wt, gy, x_shape, kernel, stride, padding)
    expected = kept.copy()
    for _ in range(3):
        other = rng.standard_normal(gy.shape, dtype=np.float32)
        P.col2im_matmul(wt, other, x_shape, kernel, stride, padding)
    np.testing.assert_array_equal(kept, expected)
    again = P.col2im_matmul(wt, gy, x_shape, kernel, stride, padding)
    np.testing.assert_array_equal(again, expected)


def test_arrays_dropped_on_another_thread_come_back():
    arrays = [recycling.empty((16, 16), np.float32) for _ in range(4)]
    addresses = {address(a) for a in arrays}

    def drop() -> None:
        arrays.clear()

    thread = threading.Thread(target=drop)
    thread.start()
    thread.join()
    assert recycling.idle_bytes() == 4 * 16 * 16 * 4
    again = [recycling.empty((16, 16), np.float32) for _ in range(4)]
    assert {address(a) for a in again} == addresses


def test_idle_memory_is_capped_letting_go_of_the_oldest(monkeypatch):
    monkeypatch.setattr(recycling, "RECYCLE_IDLE_BYTES", 3000)
    a = recycling.empty(1000, np.uint8)
    b = recycling.empty(1500, np.uint8)
    c = recycling.empty(1200, np.uint8)
    address_b, address_c = address(b), address(c)
    del a  # idle: 1000
    del b  # idle: 2500
    del c  # 3700 > 3000: a, the oldest, is let go
    assert recycling.idle_bytes() == 2700
    b, c = recycling.empty(1500, np.uint8), recycling.empty(1200, np.uint8)
    assert (address(b), address(c)) == (address_b, address_c)
    assert recycling.idle_bytes() == 0


def test_small_arrays_come_from_numpy(monkeypatch):
    monkeypatch.setattr(recycling, "RECYCLE_MIN_BYTES", 1 << 20)
    a = recycling.empty((8, 8), np.float32)
    assert a.base is None  # NumPy's own allocation
    del a
    assert recycling.idle_bytes() == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.empty((3, 4, 5, 6), np.float32),
        lambda: np.empty((4, 5, 6, 3), np.float32).transpose(3, 0, 1, 2),  # batch-last
        lambda: np.empty((5, 7), np.float32).T,
        lambda: np.empty((4, 5, 6), np.float32, order="F"),
        lambda: np.empty((6, 8), np.float32)[:, ::2],
    ],
    ids=["C", "batch-last", "transposed", "fortran-3d", "strided"],
)
def test_empty_like_keeps_the_memory_order(make):
    a = make()
    recycled = recycling.empty_like(a)
    plain = np.empty_like(a)
    assert recycled.shape == plain.shape
    assert recycled.dtype == plain.dtype
    assert recycled.strides == plain.strides


def test_a_new_block_lets_go_of_stale_idle_blocks(monkeypatch):
    # Training sizes idle while evaluation asks for others: blocks unused for a while go.
    monkeypatch.setattr(recycling, "RECYCLE_STALE_LEASES", 4)
    old = [recycling.empty(1000, np.uint8) for _ in range(3)]
    del old
    assert recycling.idle_bytes() == 3000
    kept = [recycling.empty(500, np.uint8) for _ in range(4)]  # 7 leases so far
    assert recycling.idle_bytes() == 3000  # idle since lease 3: not stale yet
    kept.append(recycling.empty(700, np.uint8))  # lease 8: 3 < 8 - 4
    assert recycling.idle_bytes() == 0
    del kept


def test_blocks_in_use_every_step_are_kept_however_many_a_step_takes(monkeypatch):
    monkeypatch.setattr(recycling, "RECYCLE_STALE_LEASES", 4)
    sizes = [1000 + 8 * i for i in range(10)]  # more arrays per step than stale leases
    before = recycling.counts()
    for _ in range(3):
        step = [recycling.empty(n, np.uint8) for n in sizes]
        del step
    after = recycling.counts()
    assert after["new"] - before["new"] == 10
    assert after["reused"] - before["reused"] == 20


def _train_steps(steps: int = 4) -> list[np.ndarray]:
    """A small padded conv net with Adam: every primitive that recycles takes part."""
    import cnnx
    from cnnx import nn

    rng = np.random.default_rng(3)
    model = nn.Sequential(
        nn.Conv2D(3, 4, 3, padding=1, rng=rng),
        nn.ReLU(inplace=True),
        nn.MaxPool2D(2),
        nn.Conv2D(4, 6, 3, padding=1, rng=rng),
        nn.ReLU(),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dropout(0.25, rng=np.random.default_rng(4)),
        nn.Linear(6 * 4 * 4, 5, rng=rng),
    )
    opt = cnnx.optim.Adam(model.named_parameters(), lr=1e-2)
    loss_fn = nn.SoftmaxCrossEntropy()
    model.train()
    kept = []
    for _ in range(steps):
        x = rng.standard_normal((8, 3, 16, 16), dtype=np.float32)
        y = rng.integers(0, 5, size=8)
        loss_fn(model(x), y)
        opt.zero_grad()
        kept.append(model.backward(loss_fn.backward()))  # a gradient the caller keeps
        opt.step()
    return [p.data.copy() for _, p in model.named_parameters()] + kept


def test_training_with_recycled_memory_gives_the_same_bits(monkeypatch):
    before = recycling.counts()["reused"]
    with_recycling = _train_steps()
    assert recycling.counts()["reused"] > before
    monkeypatch.setattr(recycling, "RECYCLE_MIN_BYTES", 1 << 62)
    plain = _train_steps()
    assert len(with_recycling) == len(plain)
    for a, b in zip(with_recycling, plain, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_write_into_the_parents_arrays():
    kept = recycling.zeros((64, 64), np.float32)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write into the block, report, and leave at once
        kept[...] = 5
        os.write(write, b"1")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    os.close(read)
    np.testing.assert_array_equal(kept, 0)
