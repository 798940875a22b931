"""im2col / col2im against naive loops, and col2im as the adjoint of im2col."""

from __future__ import annotations

import numpy as np
import pytest

from cnnx.backends import to_host
from cnnx.nn import functional as F

GEOMETRIES = [
    # (N, C, H, W), (KH, KW), stride, padding
    ((2, 1, 6, 6), (3, 3), (1, 1), (0, 0)),
    ((2, 3, 5, 7), (2, 3), (1, 1), (0, 0)),
    ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1)),
    ((3, 2, 8, 6), (3, 2), (2, 1), (1, 0)),
    ((2, 4, 4, 4), (4, 4), (1, 1), (0, 0)),
    ((2, 1, 5, 5), (1, 1), (2, 2), (0, 0)),
    ((1, 2, 9, 9), (5, 5), (3, 3), (2, 2)),
]


def naive_im2col(x, kernel, stride, padding):
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    padded[:, :, ph : ph + h, pw : pw + w] = x
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    col = np.zeros((c, kh, kw, oh, ow, n), dtype=x.dtype)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for ni in range(n):
                    for a in range(oh):
                        for b in range(ow):
                            col[ci, i, j, a, b, ni] = padded[ni, ci, a * sh + i, b * sw + j]
    return col


def naive_col2im(col, shape, stride, padding):
    n, c, h, w = shape
    _, kh, kw, oh, ow, _ = col.shape
    sh, sw = stride
    ph, pw = padding
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for ni in range(n):
                    for a in range(oh):
                        for b in range(ow):
                            padded[ni, ci, a * sh + i, b * sw + j] += col[ci, i, j, a, b, ni]
    return padded[:, :, ph : ph + h, pw : pw + w]


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), GEOMETRIES)
def test_im2col_matches_naive_loop(device, shape, kernel, stride, padding):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    col = F.im2col(device.asarray(x), kernel, stride, padding)
    assert col.dtype == np.float32
    np.testing.assert_array_equal(to_host(col), naive_im2col(x, kernel, stride, padding))


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), GEOMETRIES)
def test_col2im_matches_naive_loop(device, shape, kernel, stride, padding):
    ref = naive_im2col(np.zeros(shape), kernel, stride, padding)
    col = np.random.default_rng(1).standard_normal(ref.shape)
    out = F.col2im(device.asarray(col), shape, stride, padding)
    assert out.shape == shape
    np.testing.assert_allclose(to_host(out), naive_col2im(col, shape, stride, padding), rtol=1e-12)


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), GEOMETRIES)
def test_col2im_is_the_adjoint_of_im2col(device, shape, kernel, stride, padding):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    col = F.im2col(device.asarray(x), kernel, stride, padding)
    c = rng.standard_normal(col.shape)
    lhs = float((to_host(col) * c).sum())
    rhs = float((x * to_host(F.col2im(device.asarray(c), shape, stride, padding))).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_im2col_reads_batch_last_views(device):
    # Layers hand each other (N, C, H, W) views of (C, H, W, N) memory; im2col
    # must read them by their strides and give the same columns as for a copy.
    x = np.random.default_rng(3).standard_normal((3, 2, 5, 5)).astype(np.float32)
    view = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    a = F.im2col(device.asarray(view), (3, 3), (1, 1), (1, 1))
    b = F.im2col(device.asarray(np.ascontiguousarray(x)), (3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(to_host(a), to_host(b))


def test_window_too_large_is_a_value_error():
    with pytest.raises(ValueError, match="does not fit"):
        F.im2col(np.zeros((1, 1, 2, 2), dtype=np.float32), (3, 3))


@pytest.mark.parametrize(
    ("value", "expected"), [(3, (3, 3)), ((2, 5), (2, 5)), ([1, 2], (1, 2)), (4.0, (4, 4))]
)
def test_pair_accepts_ints_and_pairs(value, expected):
    assert F.pair(value, "kernel_size") == expected


@pytest.mark.parametrize("value", [2.5, (1, 2, 3), "3", (1.5, 2), True])
def test_pair_rejects_other_values_naming_the_argument(value):
    with pytest.raises(ValueError, match="kernel_size"):
        F.pair(value, "kernel_size")
