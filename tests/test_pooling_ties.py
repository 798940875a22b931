"""Max pooling with ties, on every window shape: forward values and backward routing
against a naive loop that takes the FIRST maximum of each window in row-major order.

Inputs of small integers make ties the rule, not the exception: windows of 3 or more
elements and overlapping windows (stride < kernel) each have their own code path.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnx import nn
from cnnx.backends import to_host


def naive_max_pool(x, kernel, stride):
    """``(y, gx_of)``: the pooled values and a function routing a gradient ``gy``."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    first = np.empty((n, c, oh, ow, 2), dtype=np.int64)  # row, column of the first maximum
    for i in range(oh):
        for j in range(ow):
            window = x[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw].reshape(n, c, -1)
            k = window.argmax(axis=2)  # NumPy's argmax returns the first maximum
            y[:, :, i, j] = window.max(axis=2)
            first[:, :, i, j, 0] = i * sh + k // kw
            first[:, :, i, j, 1] = j * sw + k % kw

    def gx_of(gy):
        gx = np.zeros_like(x)
        for a in range(n):
            for b in range(c):
                for i in range(oh):
                    for j in range(ow):
                        r, s = first[a, b, i, j]
                        gx[a, b, r, s] += gy[a, b, i, j]  # overlapping windows add up
        return gx

    return y, gx_of


WINDOWS = [
    ((3, 3), (3, 3)),  # 3×3, no overlap
    ((3, 3), (1, 1)),  # 3×3, overlapping
    ((3, 3), (2, 2)),
    ((2, 2), (1, 1)),  # 2×2, overlapping
    ((4, 4), (4, 4)),
    ((2, 3), (2, 3)),  # rectangular
    ((3, 2), (1, 2)),
    ((1, 3), (1, 1)),
]


@pytest.mark.parametrize(("kernel", "stride"), WINDOWS, ids=lambda v: "x".join(map(str, v)))
@pytest.mark.parametrize("values", [2, 3], ids=["0-1", "0-2"])
def test_max_pool_ties_go_to_the_first_maximum(device, kernel, stride, values):
    rng = np.random.default_rng(sum(kernel) * 10 + sum(stride) + values)
    x = rng.integers(0, values, size=(3, 2, 9, 10)).astype(np.float32)
    pool = nn.MaxPool2D(kernel, stride=stride)
    y = to_host(pool(device.asarray(x)))
    expected_y, gx_of = naive_max_pool(x, kernel, stride)
    np.testing.assert_array_equal(y, expected_y)
    # distinct gradients per output position show where each one was sent
    gy = rng.permutation(y.size).reshape(y.shape).astype(np.float32) + 1
    gx = to_host(pool.backward(device.asarray(gy)))
    np.testing.assert_array_equal(gx, gx_of(gy))


def test_all_equal_window_sends_everything_to_its_top_left_corner(device):
    x = np.full((1, 1, 3, 3), 7.0, dtype=np.float32)
    pool = nn.MaxPool2D(3)
    pool(device.asarray(x))
    gx = to_host(pool.backward(device.asarray(np.full((1, 1, 1, 1), 5.0, dtype=np.float32))))
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0] = 5.0
    np.testing.assert_array_equal(gx, expected)


def test_overlapping_windows_with_a_tie_between_windows(device):
    # Row [1, 5, 5, 1] with 2-wide windows at stride 1: the windows are (1,5), (5,5)
    # and (5,1). The middle one ties: its gradient goes to its first 5 (column 1).
    x = np.array([[[[1, 5, 5, 1]]]], dtype=np.float32)
    pool = nn.MaxPool2D((1, 2), stride=1)
    y = to_host(pool(device.asarray(x)))
    np.testing.assert_array_equal(y, [[[[5, 5, 5]]]])
    gx = to_host(pool.backward(device.asarray(np.array([[[[1, 10, 100]]]], dtype=np.float32))))
    np.testing.assert_array_equal(gx, [[[[0, 11, 100, 0]]]])
