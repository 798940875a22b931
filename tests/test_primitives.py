"""The CPU execution strategies of cnnx.backends.primitives against their plain versions.

Each primitive's plain version is its formula in ``xp`` code; the CPU version cuts the
work into chunks and runs them on threads. They must agree (exactly where no sum is
reordered, to float rounding where one is), and the CPU version must give the same bits
whatever the number of threads.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from cnnx.backends import primitives as P
from cnnx.backends import threads

CONV_GEOMETRIES = [
    # (N, C, H, W), O, kernel, stride, padding
    ((5, 3, 12, 11), 4, (3, 3), (1, 1), (0, 0)),
    ((4, 2, 13, 13), 3, (3, 3), (1, 1), (1, 1)),
    ((3, 2, 16, 14), 5, (5, 5), (1, 1), (2, 2)),
    ((3, 3, 15, 15), 2, (3, 2), (2, 1), (1, 0)),
    ((2, 2, 17, 17), 3, (5, 5), (2, 2), (0, 0)),
    ((4, 1, 12, 12), 2, (2, 2), (2, 2), (0, 0)),
]


@pytest.fixture(
    params=[(1, 1, 1), (20_000, 1, 1), (1, 1 << 40, 0), (20_000, 1 << 40, 0)],
    ids=["rows-small-pieces", "rows", "im2col-small-pieces", "im2col"],
)
def small_chunks(monkeypatch, request):
    """Tiny chunks and pieces, so that small test arrays are cut into many of them.

    Each test runs with the row strategies (the forward and weight gradient unfolding
    shifted rows wherever the kernel is taller than its stride, the input gradient as one
    product per input row wherever the row stride is 1), and with im2col and col2im's
    fold everywhere.
    """
    chunk_bytes, shifted_min_saved, gx_by_input_rows = request.param
    monkeypatch.setattr(P, "CONV_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(P, "SHIFTED_ROWS_MIN_SAVED_BYTES", shifted_min_saved)
    monkeypatch.setattr(P, "GX_BY_INPUT_ROWS", gx_by_input_rows)
    monkeypatch.setattr(P, "CONV_MIN_SPLIT_BYTES", 1)
    monkeypatch.setattr(P, "CONV_GW_BLOCK_COLS", 7)  # ragged blocks of the gW sum
    monkeypatch.setattr(P, "CONV_GW_BLOCK_BYTES", 1)
    monkeypatch.setattr(P, "CONV_GW_MIN_BLOCK_COLS", 5)
    monkeypatch.setattr(P, "TINY_BYTES", 1)
    monkeypatch.setattr(P, "POOL_CHUNK_BYTES", 1)
    monkeypatch.setattr(threads, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(P, "MATMUL_BLOCK_MACS", 64)
    # Ragged column blocks of every convolution product, on any BLAS kernel.
    monkeypatch.setattr(P, "openblas_corename", lambda: "skylakex")
    monkeypatch.setattr(P, "CONV_GEMM_MIN_K", 1)
    monkeypatch.setattr(P, "SMALL_GEMM_MACS", 1000)
    monkeypatch.setattr(P, "SMALL_GEMM_COL_MULTIPLE", 3)
    P._conv_plan.cache_clear()
    yield
    P._conv_plan.cache_clear()


@pytest.fixture
def restore_threads():
    before = threads.num_threads()
    yield
    threads.set_num_threads(before)


def batch_last(a):
    return np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def conv_case(shape, o, kernel, stride, padding, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = batch_last(rng.standard_normal(shape).astype(dtype))
    w = rng.standard_normal((o, shape[1] * kernel[0] * kernel[1])).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    oh = (shape[2] + 2 * padding[0] - kernel[0]) // stride[0] + 1
    ow = (shape[3] + 2 * padding[1] - kernel[1]) // stride[1] + 1
    gy = rng.standard_normal((o, oh * ow * shape[0])).astype(dtype)
    return x, w, b, gy


def conv_results(x, w, b, gy, geometry, plain=False):
    fwd = P.im2col_matmul_plain if plain else P.im2col_matmul
    gw = P.matmul_im2col_t_plain if plain else P.matmul_im2col_t
    gx = P.col2im_matmul_plain if plain else P.col2im_matmul
    return (
        np.asarray(fwd(w, x, *geometry, bias=b)),
        np.asarray(gw(gy, x, *geometry)),
        np.asarray(gx(w.T, gy, x.shape, *geometry)),
    )


@pytest.mark.parametrize(("shape", "o", "kernel", "stride", "padding"), CONV_GEOMETRIES)
@pytest.mark.parametrize(("dtype", "rtol"), [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_chunked_convolution_matches_plain(monkeypatch, small_chunks, shape, o, kernel, stride,
                                           padding, dtype, rtol):  # fmt: skip
    geometry = (kernel, stride, padding)
    plan = P._plan(shape, kernel, stride, padding, np.dtype(dtype).itemsize)
    assert plan.chunks > 1  # the chunked path really runs
    # ... and unfolds shifted rows where the fixture asks for them
    assert plan.shifted == (P.SHIFTED_ROWS_MIN_SAVED_BYTES == 1 and kernel[0] > stride[0])
    by_rows = []
    row_products = P._col2im_by_input_rows
    monkeypatch.setattr(
        P, "_col2im_by_input_rows", lambda *a: by_rows.append(1) or row_products(*a)
    )
    x, w, b, gy = conv_case(shape, o, kernel, stride, padding, dtype)
    fast = conv_results(x, w, b, gy, geometry)
    # ... and takes the input gradient row by row where the fixture asks for it
    assert bool(by_rows) == bool(P.GX_BY_INPUT_ROWS and stride[0] == 1 and kernel[0] > 1)
    plain = conv_results(x, w, b, gy, geometry, plain=True)
    for got, want in zip(fast, plain, strict=True):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize(("shape", "o", "kernel", "stride", "padding"), CONV_GEOMETRIES)
def test_chunked_convolution_gives_the_same_bits_on_any_thread_count(
    small_chunks, restore_threads, shape, o, kernel, stride, padding
):
    geometry = (kernel, stride, padding)
    x, w, b, gy = conv_case(shape, o, kernel, stride, padding, np.float32, seed=1)
    results = []
    for count in (1, 2, 3):
        threads.set_num_threads(count)
        results.append(conv_results(x, w, b, gy, geometry))
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("shape", "kernel", "stride"),
    [((4, 3, 8, 8), (2, 2), (2, 2)), ((3, 5, 9, 7), (2, 2), (2, 2)),
     ((2, 2, 9, 9), (3, 3), (3, 3)), ((2, 3, 7, 7), (3, 3), (2, 2))],
)  # fmt: skip
@pytest.mark.parametrize("count", [1, 3])
def test_maxpool_matches_plain_exactly_with_ties(
    small_chunks, restore_threads, shape, kernel, stride, count
):
    threads.set_num_threads(count)
    rng = np.random.default_rng(2)
    # Small integers: many windows hold their maximum twice.
    x = batch_last(rng.integers(0, 3, size=shape).astype(np.float32))
    y, saved = P.maxpool_forward(x, kernel, stride)
    y_plain, saved_plain = P.maxpool_forward_plain(x, kernel, stride)
    np.testing.assert_array_equal(y, y_plain)
    gy = batch_last(rng.standard_normal(y.transpose(3, 0, 1, 2).shape).astype(np.float32))
    gx = P.maxpool_backward(gy, saved, x.shape, kernel, stride)
    gx_plain = P.maxpool_backward_plain(gy, saved_plain, x.shape, kernel, stride)
    np.testing.assert_array_equal(gx, gx_plain)


def _cropped_batch_last(a):
    """``a`` as a view cropping one padding row and column off a batch-last array."""
    n, c, h, w = a.shape
    padded = np.zeros((c, h + 2, w + 2, n), dtype=a.dtype)
    padded[:, 1:-1, 1:-1] = a.transpose(1, 2, 3, 0)
    return padded[:, 1:-1, 1:-1].transpose(3, 0, 1, 2)


@pytest.mark.parametrize("padding", [(0, 0), (1, 2)])
@pytest.mark.parametrize("layout", ["nchw", "batch_last"])
@pytest.mark.parametrize("count", [1, 3])
def test_pad_matches_plain_and_is_stored_batch_last(
    small_chunks, restore_threads, padding, layout, count
):
    threads.set_num_threads(count)
    x = np.random.default_rng(12).standard_normal((5, 3, 4, 6)).astype(np.float32)
    if layout == "batch_last":
        x = batch_last(x)
    got = P.pad(x, padding)
    want = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(P.pad_plain(x, padding), want)
    # The convolution reads batch-last memory in place: no further copy.
    assert got.transpose(1, 2, 3, 0).flags.c_contiguous
    if layout == "batch_last" and padding == (0, 0):
        assert np.shares_memory(got, x)


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("count", [1, 3])
def test_relu_on_arrays_of_different_layouts_matches_plain_exactly(
    small_chunks, restore_threads, inplace, count
):
    # The input gradient of a padded convolution is a cropped view of a padded array;
    # the activation it meets is batch-last.
    threads.set_num_threads(count)
    rng = np.random.default_rng(8)
    x0 = rng.standard_normal((4, 5, 3, 6)).astype(np.float32)
    g0 = rng.standard_normal(x0.shape).astype(np.float32)
    want_y = P.relu_forward_plain(x0)
    x = _cropped_batch_last(x0)
    y = P.relu_forward(x, inplace=inplace)
    np.testing.assert_array_equal(y, want_y)
    assert (y is x) == inplace
    g = _cropped_batch_last(g0)
    gx = P.relu_backward(g, batch_last(want_y), inplace=inplace)
    np.testing.assert_array_equal(gx, P.relu_backward_plain(g0, want_y))
    assert (gx is g) == inplace


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("layout", ["batch_last", "c_order", "strided"])
@pytest.mark.parametrize("count", [1, 3])
def test_relu_matches_plain_exactly(small_chunks, restore_threads, inplace, layout, count):
    threads.set_num_threads(count)
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((4, 3, 5, 6)).astype(np.float32)
    if layout == "batch_last":
        x0 = batch_last(x0)
    elif layout == "strided":
        x0 = np.repeat(x0, 2, axis=3)[..., ::2]
    g0 = rng.standard_normal(x0.shape).astype(np.float32)
    want_y = P.relu_forward_plain(x0.copy())
    x = x0.copy() if layout != "batch_last" else batch_last(x0)
    y = P.relu_forward(x, inplace=inplace)
    np.testing.assert_array_equal(y, want_y)
    assert (y is x) == inplace
    g = g0.copy() if layout != "batch_last" else batch_last(g0)
    if layout == "batch_last":
        y = batch_last(np.asarray(y))
    gx = P.relu_backward(g, y, inplace=inplace)
    np.testing.assert_array_equal(gx, P.relu_backward_plain(g0, want_y))


@pytest.mark.parametrize("layout", ["batch_last", "c_order", "matrix_t", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("count", [1, 3])
def test_dropout_mask_and_product_match_plain_exactly(
    small_chunks, restore_threads, layout, dtype, count
):
    threads.set_num_threads(count)
    rng = np.random.default_rng(5)
    shape = (5, 6) if layout == "matrix_t" else (4, 3, 5, 6)
    x = rng.standard_normal(shape).astype(dtype)
    if layout == "batch_last":
        x = batch_last(x)
    elif layout == "matrix_t":
        x = np.ascontiguousarray(x.T).T
    elif layout == "strided":
        x = np.repeat(x, 2, axis=-1)[..., ::2]
    keep = rng.random(shape) >= 0.4  # drawn in C order, as Dropout draws it
    scale = 1.0 / (1.0 - 0.4)
    mask = P.scaled_mask(keep.view(np.uint8), scale, like=x)
    want = P.scaled_mask_plain(keep.view(np.uint8), scale, like=x)
    np.testing.assert_array_equal(mask, want)
    assert mask.dtype == dtype and mask.strides == np.empty_like(x).strides
    y = P.multiply(x, mask)
    np.testing.assert_array_equal(y, P.multiply_plain(x, want))
    assert y.strides == np.empty_like(x).strides


def test_parallel_for_runs_every_item_and_raises_errors(restore_threads):
    threads.set_num_threads(3)
    seen = np.zeros(10, dtype=int)

    def work(k):
        seen[k] += 1

    threads.parallel_for(work, 10)
    assert seen.tolist() == [1] * 10

    def fail(k):
        if k == 4:
            raise ValueError("item 4 failed")

    with pytest.raises(ValueError, match="item 4 failed"):
        threads.parallel_for(fail, 6)


def test_small_regions_run_on_the_calling_thread(monkeypatch, restore_threads):
    import threading
    import time

    threads.set_num_threads(4)
    monkeypatch.setattr(threads, "PARALLEL_MIN_BYTES", 1000)
    assert [threads.threads_for(n) for n in (0, 999, 1000, 2999, 3000, 10**9)] == [
        1, 1, 1, 2, 3, 4,
    ]  # fmt: skip
    ran_on = set()

    def work(k):
        time.sleep(0.01)  # long enough for a helper thread to wake up and take items
        ran_on.add(threading.get_ident())

    threads.parallel_for(work, 8, nbytes=1999)
    assert ran_on == {threading.get_ident()}
    ran_on.clear()
    threads.parallel_for(work, 8, nbytes=10**9)  # the control: helpers do take items
    assert len(ran_on) > 1


def test_a_finished_region_is_not_kept_alive_by_the_helpers(restore_threads):
    import gc
    import time
    import weakref

    threads.set_num_threads(3)

    class Payload:
        pass

    payload = Payload()
    ref = weakref.ref(payload)

    def work(k, payload=payload):
        time.sleep(0.002)

    threads.parallel_for(work, 6, nbytes=10**12)
    del work, payload
    # A helper that woke late may still be finishing; none may keep the region after.
    deadline = time.monotonic() + 5
    while ref() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.001)
    assert ref() is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_regions_on_helpers_of_its_own(restore_threads):
    import threading
    import time

    threads.set_num_threads(3)
    threads.parallel_for(lambda k: time.sleep(0.001), 6, nbytes=10**12)  # helpers start
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report how many threads ran its items, and leave at once
        ran_on, seen = set(), np.zeros(8, dtype=int)

        def work(k):
            time.sleep(0.01)  # long enough for a helper to wake up and take items
            ran_on.add(threading.get_ident())
            seen[k] += 1

        ok = False
        try:
            threads.parallel_for(work, 8, nbytes=10**12)
            ok = seen.tolist() == [1] * 8 and len(ran_on) > 1
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.waitpid(pid, 0)
        os.close(read)


def test_items_run_with_the_ufunc_buffer_and_the_caller_keeps_its_own(
    monkeypatch, restore_threads
):
    import threading
    import time

    threads.set_num_threads(3)
    monkeypatch.setattr(threads, "UFUNC_BUFFER_ELEMENTS", 640)
    seen = {}

    def work(k):
        time.sleep(0.01)  # so that helper threads take items too
        seen[k] = (threading.get_ident(), np.getbufsize())

    before = np.setbufsize(4096)
    try:
        threads.parallel_for(work, 6, nbytes=10**12, small_ufunc_buffer=True)
        assert np.getbufsize() == 4096
        assert len({ident for ident, _ in seen.values()}) > 1
        assert {size for _, size in seen.values()} == {640}
        seen.clear()
        threads.parallel_for(work, 6, nbytes=10**12)  # regions that do not ask keep NumPy's
        assert len(seen) == 6 and 640 not in {size for _, size in seen.values()}

        def fail(k):
            raise ValueError("item failed")

        for nbytes in (1, 10**12):  # on the caller alone, and shared
            with pytest.raises(ValueError, match="item failed"):
                threads.parallel_for(fail, 4, nbytes=nbytes, small_ufunc_buffer=True)
            assert np.getbufsize() == 4096
    finally:
        np.setbufsize(before)


def test_training_gives_the_same_bits_with_any_ufunc_buffer(
    small_chunks, monkeypatch, restore_threads
):
    threads.set_num_threads(2)
    results = []
    for size in (8192, 1024, 16):
        monkeypatch.setattr(threads, "UFUNC_BUFFER_ELEMENTS", size)
        results.append(_train_two_steps(seed=5))
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_set_num_threads_rejects_non_positive_ints(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        threads.set_num_threads(bad)


@pytest.mark.parametrize(("m", "k", "n"), [(7, 5, 300), (300, 6, 9), (1, 40, 1000), (33, 17, 33)])
def test_split_matmul_matches_plain_on_any_thread_count(monkeypatch, restore_threads, m, k, n):
    monkeypatch.setattr(P, "MATMUL_BLOCK_MACS", 64)
    monkeypatch.setattr(P, "TINY_BYTES", 1)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = np.asfortranarray(rng.standard_normal((k, n)).astype(np.float32))
    results = []
    for count in (1, 2, 3):
        threads.set_num_threads(count)
        results.append(P.matmul(a, b))
    np.testing.assert_allclose(results[0], P.matmul_plain(a, b), rtol=1e-5, atol=1e-5)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def _train_two_steps(seed):
    from cnnx import nn, optim

    rng = np.random.default_rng(seed)
    model = nn.Sequential(
        nn.Conv2D(2, 4, 3, padding=1, rng=rng), nn.ReLU(inplace=True), nn.MaxPool2D(2),
        nn.Conv2D(4, 6, 3, rng=rng), nn.ReLU(inplace=True), nn.MaxPool2D(2),
        nn.Flatten(), nn.Linear(6 * 3 * 3, 5, rng=rng),
    )  # fmt: skip
    opt = optim.Adam(model.named_parameters(), lr=1e-2)
    loss_fn = nn.SoftmaxCrossEntropy()
    data = np.random.default_rng(seed + 1)
    for _ in range(2):
        x = data.standard_normal((7, 2, 16, 16)).astype(np.float32)
        y = data.integers(0, 5, size=7)
        loss_fn(model(x), y)
        opt.zero_grad()
        model.backward_params(loss_fn.backward())
        opt.step()
    return [p.data.copy() for p in model.parameters()]


def test_training_gives_the_same_bits_on_any_thread_count(small_chunks, restore_threads):
    results = []
    for count in (1, 2, 3):
        threads.set_num_threads(count)
        results.append(_train_two_steps(seed=5))
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            np.testing.assert_array_equal(got, want)


def _three_steps(name, start, monkeypatch, min_parallel, piece):
    from cnnx import optim
    from cnnx.nn import Parameter

    monkeypatch.setattr(threads, "PARALLEL_MIN_BYTES", min_parallel)
    monkeypatch.setattr(P, "UPDATE_PIECE_ELEMENTS", piece)
    param = Parameter(start.copy())
    opt = getattr(optim, name)([param], lr=0.1)
    grads = np.random.default_rng(7)
    for _ in range(3):
        param.grad[...] = grads.standard_normal(start.size).astype(np.float32)
        opt.step()
    return param.data


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam"])
def test_optimizer_update_in_parts_matches_one_call(monkeypatch, restore_threads, name):
    threads.set_num_threads(3)
    start = np.random.default_rng(6).standard_normal(1001).astype(np.float32)
    whole = _three_steps(name, start, monkeypatch, min_parallel=1 << 40, piece=1 << 40)
    for piece in (16, 496):
        for min_parallel in (1, 1 << 40):  # on three threads, and on the caller alone
            in_pieces = _three_steps(name, start, monkeypatch, min_parallel, piece)
            np.testing.assert_array_equal(in_pieces, whole)


def test_thread_buffers_never_leak_into_outputs(small_chunks, restore_threads):
    from cnnx import nn

    threads.set_num_threads(2)
    conv, pool = nn.Conv2D(2, 3, 3, padding=1, rng=0), nn.MaxPool2D(2)
    rng = np.random.default_rng(8)
    x1, x2 = (rng.random((3, 2, 10, 10), dtype=np.float32) for _ in range(2))
    y1 = pool(conv(x1))
    kept = np.array(y1)
    g1 = conv.backward(pool.backward(np.ones_like(y1)))
    kept_g, kept_w = np.array(g1), conv.weight.grad.copy()
    y2 = pool(conv(x2))
    conv.backward(pool.backward(np.ones_like(y2)))
    np.testing.assert_array_equal(y1, kept)
    np.testing.assert_array_equal(g1, kept_g)
    assert not np.array_equal(conv.weight.grad, kept_w)  # the second backward did add


@pytest.mark.parametrize("b_order", ["C", "F"])
@pytest.mark.parametrize(("m", "n"), [(10, 300), (300, 10)])  # blocks of columns, of rows
def test_matmul_tn_add_matches_plain_on_any_thread_count(
    monkeypatch, restore_threads, b_order, m, n
):
    monkeypatch.setattr(P, "MATMUL_BLOCK_MACS", 64)
    monkeypatch.setattr(P, "TINY_BYTES", 1)
    rng = np.random.default_rng(9)
    a = rng.standard_normal((64, m)).astype(np.float32)
    b = np.asarray(rng.standard_normal((64, n)).astype(np.float32), order=b_order)
    start = rng.standard_normal((m, n)).astype(np.float32)
    want = start.copy()
    P.matmul_tn_add_plain(a, b, want)
    results = []
    for count in (1, 3):
        threads.set_num_threads(count)
        out = start.copy()
        P.matmul_tn_add(a, b, out)
        results.append(out)
    np.testing.assert_allclose(results[0], want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(results[0], start)  # it did add
    np.testing.assert_array_equal(results[1], results[0])


def counted_matmul(monkeypatch):
    """Patch the primitives' np.matmul to record the columns of each call."""
    calls = []
    real_matmul = np.matmul

    def counting_matmul(a, b, out):
        calls.append(b.shape[1])
        return real_matmul(a, b, out=out)

    monkeypatch.setattr(P.np, "matmul", counting_matmul)
    return calls


@pytest.mark.parametrize(("m", "k", "n"), [(6, 25, 3000), (32, 27, 2049), (150, 16, 1024)])
def test_products_in_column_blocks_match_one_call(monkeypatch, m, k, n):
    # Blocks of 256 columns, so these small products really are cut.
    monkeypatch.setattr(P, "openblas_corename", lambda: "skylakex")
    monkeypatch.setattr(P, "SMALL_GEMM_MACS", 256 * m * k + 5)
    calls = counted_matmul(monkeypatch)
    rng = np.random.default_rng(10)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    out = np.full((m, n), np.nan, dtype=np.float32)
    P._matmul_in_column_blocks(a, b, out)
    assert calls == [256] * (n // 256) + ([n % 256] if n % 256 else [])
    np.testing.assert_allclose(out, P.matmul_plain(a, b), rtol=1e-5, atol=1e-5)


def test_product_blocks_stay_within_the_small_matrix_kernels(monkeypatch):
    rng = np.random.default_rng(11)

    def columns_per_call(corename, m, k, n):
        monkeypatch.setattr(P, "openblas_corename", lambda: corename)
        calls = counted_matmul(monkeypatch)
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        P._matmul_in_column_blocks(a, b, np.empty((m, n), dtype=np.float32))
        monkeypatch.undo()
        return calls

    # LeNet-5's layers at batch 256: 6 × 25 and 16 × 150 multiply-adds per column, so
    # blocks of 6,656 and 384 columns (10^6 multiply-adds at most, multiples of 64).
    assert columns_per_call("skylakex", 6, 25, 14_336) == [6_656, 6_656, 1_024]
    assert columns_per_call("skylakex", 16, 150, 2_560) == [384] * 6 + [256]
    assert columns_per_call("sapphirerapids", 150, 16, 2_560) == [384] * 6 + [256]
    # K = 9 is below CONV_GEMM_MIN_K; 64 × 288 leaves fewer than 64 columns per block;
    # a product within the limit is one block; other kernels have no small-matrix path.
    assert columns_per_call("skylakex", 8, 9, 50_000) == [50_000]
    assert columns_per_call("skylakex", 64, 288, 1_024) == [1_024]
    assert columns_per_call("skylakex", 16, 150, 384) == [384]
    assert columns_per_call("haswell", 6, 25, 14_336) == [14_336]
    assert columns_per_call("", 16, 150, 2_560) == [2_560]


def test_openblas_corename_is_the_kernel_threadpoolctl_reports():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    openblas = [
        info for info in threadpoolctl.threadpool_info()
        if info.get("internal_api") == "openblas" and "numpy" in info.get("filepath", "")
    ]  # fmt: skip
    name = threads.openblas_corename()
    assert name == name.lower()
    if openblas:
        assert name == openblas[0]["architecture"].lower()


@pytest.mark.parametrize(
    ("shape", "dtype", "padding"),
    [((20, 1, 32, 32), np.float32, (0, 0)),  # a sample is 4 KiB: every row in one L1 set
     ((20, 3, 32, 32), np.float32, (1, 1)),  # 12 KiB, the CIFAR-10 size
     ((19, 1, 16, 32), np.float64, (2, 1)),  # 4 KiB of float64, a ragged last block
     ((9, 2, 8, 6), np.float32, (1, 1))],  # 384 bytes: one call
)  # fmt: skip
def test_batch_last_copy_of_an_nchw_batch_matches_plain(restore_threads, shape, dtype, padding):
    x = np.random.default_rng(12).standard_normal(shape).astype(dtype)  # (N, C, H, W) memory
    ph, pw = padding
    want = np.pad(x.transpose(1, 2, 3, 0), [(0, 0), (ph, ph), (pw, pw), (0, 0)])
    for count in (1, 3):
        threads.set_num_threads(count)
        got = P._padded_batch_last(x, padding)
        assert got.flags.c_contiguous and got.dtype == dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("shape", "o", "kernel", "stride", "padding"), CONV_GEOMETRIES[:3])
def test_chunked_convolution_of_an_nchw_batch_matches_plain(small_chunks, shape, o, kernel,
                                                            stride, padding):  # fmt: skip
    geometry = (kernel, stride, padding)
    x, w, b, gy = conv_case(shape, o, kernel, stride, padding, np.float32)
    x_nchw = np.ascontiguousarray(x)
    fast = conv_results(x_nchw, w, b, gy, geometry)
    plain = conv_results(x, w, b, gy, geometry, plain=True)
    for got, want in zip(fast, plain, strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-4)


def test_weight_gradient_blocks_follow_the_first_layers_operand_bytes():
    # (K, O) of the zoo's layers, float32
    assert P._gw_block_cols(9, 8, 4) == 4096  # mnist_cnn's first layer: 384 KiB / 68 bytes
    assert P._gw_block_cols(25, 6, 4) == 2048  # LeNet-5's first
    assert P._gw_block_cols(27, 32, 4) == 1024  # the CIFAR-size first
    assert P._gw_block_cols(27, 500, 4) == 1024  # never below the minimum
    assert P._gw_block_cols(25, 6, 8) == 1024  # float64 takes twice the bytes
    assert P._gw_block_cols(72, 16, 4) == P.CONV_GW_BLOCK_COLS  # not a first layer


@pytest.mark.parametrize(("c", "kernel"), [(1, (5, 5)), (3, (3, 2)), (6, (2, 5))])
def test_shifted_rows_reorder_the_weights_and_back_exactly(monkeypatch, c, kernel):
    monkeypatch.setattr(P, "SHIFTED_ROWS_MIN_SAVED_BYTES", 1)
    P._conv_plan.cache_clear()
    plan = P._plan((2, c, 9, 9), kernel, (1, 1), (0, 0), 4)
    assert plan.shifted
    kh, kw = kernel
    w = np.arange(4 * c * kh * kw, dtype=np.float32).reshape(4, -1)
    ordered = plan.to_k_order(w)
    # column (i, c, j) of the shifted order is column (c, i, j) of im2col's
    for i in range(kh):
        for ch in range(c):
            for j in range(kw):
                np.testing.assert_array_equal(
                    ordered[:, (i * c + ch) * kw + j], w[:, (ch * kh + i) * kw + j]
                )
    np.testing.assert_array_equal(plan.from_k_order(ordered), w)
    P._conv_plan.cache_clear()


def test_shifted_rows_follow_the_bytes_they_save():
    # (N, C, H, W), kernel, padding of the zoo's layers, float32; default threshold
    def shifted(shape, k, pad, stride=1):
        return P._plan(shape, (k, k), (stride, stride), (pad, pad), 4).shifted

    assert shifted((64, 1, 28, 28), 5, 2)  # LeNet-5's first: 4·5·28·64·4 bytes a row
    assert shifted((64, 8, 13, 13), 3, 0)  # mnist_cnn's second
    assert not shifted((64, 1, 28, 28), 3, 0)  # 2·3·26·64·4 bytes: under 64 KiB
    assert shifted((256, 1, 28, 28), 3, 0)  # the same layer at batch 256
    assert not shifted((256, 8, 28, 28), 2, 0, stride=2)  # windows do not overlap


def _state_after(rng):
    return rng.bit_generator.state


@pytest.mark.parametrize("size", [1, 7, 64, 1_000, 1_001, 4_097])
@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("odd_draw_before", [False, True])
def test_uniform_float32_draws_the_same_numbers_and_leaves_the_same_state(
    monkeypatch, restore_threads, size, count, odd_draw_before
):
    monkeypatch.setattr(P, "RANDOM_SPLIT_MIN_NUMBERS", 3)  # split even small draws
    threads.set_num_threads(count)
    split, plain = np.random.default_rng(11), np.random.default_rng(11)
    if odd_draw_before:  # leaves half of a 64-bit output buffered in PCG64
        split.random(5, dtype=np.float32)
        plain.random(5, dtype=np.float32)
    shape = (size,) if size % 2 else (2, size // 2)
    got = P.uniform_float32(split, shape)
    want = P.uniform_float32_plain(plain, shape)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert _state_after(split) == _state_after(plain)
    after = [g.random(9, dtype=np.float32) for g in (split, plain)]
    np.testing.assert_array_equal(after[0], after[1])


@pytest.mark.parametrize("bit_generator", [np.random.Philox, np.random.MT19937, np.random.SFC64])
def test_uniform_float32_with_other_bit_generators_matches_plain(
    monkeypatch, restore_threads, bit_generator
):
    monkeypatch.setattr(P, "RANDOM_SPLIT_MIN_NUMBERS", 3)
    threads.set_num_threads(3)
    split, plain = (np.random.Generator(bit_generator(4)) for _ in range(2))
    np.testing.assert_array_equal(
        P.uniform_float32(split, (10, 30)), P.uniform_float32_plain(plain, (10, 30))
    )
    after = [g.random(9, dtype=np.float32) for g in (split, plain)]
    np.testing.assert_array_equal(after[0], after[1])
