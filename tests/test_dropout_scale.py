"""Inverted dropout's scale, from two angles other than tests/test_layers.py's.

1. Statistics: averaged over many masks, training-mode dropout leaves every input's
   expected value unchanged (E[y] = x), for several drop rates.
2. Exact values on varied inputs: every element is either 0 or x / (1 − p), and the
   backward pass applies the same mask and the same scale.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnx import nn
from cnnx.backends import to_host


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_expected_value_is_preserved_elementwise(device, p):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, size=(8, 25)).astype(np.float32)
    layer = nn.Dropout(p, rng=1)
    draws = 4000
    total = np.zeros(x.shape, dtype=np.float64)
    for _ in range(draws):
        total += to_host(layer(device.asarray(x)))
    mean = total / draws
    # each y is x/(1-p) with probability 1-p, else 0: std of the mean of `draws` of them
    std_of_mean = x * np.sqrt(p / (1 - p) / draws)
    z = (mean - x) / std_of_mean
    assert np.abs(z).max() < 5.5, np.abs(z).max()  # 200 elements, 5.5 sigma: no false alarm
    # and over all elements together, far tighter than any wrong scale could pass
    assert mean.sum() / x.sum() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.75])
def test_survivors_are_exactly_scaled_and_backward_uses_the_same_mask(device, p):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 33)).astype(np.float32)
    x[x == 0] = 1.0
    layer = nn.Dropout(p, rng=3)
    y = to_host(layer(device.asarray(x)))
    kept = y != 0
    scale = np.float32(1.0 / (1.0 - p))
    np.testing.assert_allclose(y[kept], x[kept] * scale, rtol=1e-6)
    assert abs(kept.mean() - (1 - p)) < 0.05  # 2112 elements
    gy = rng.standard_normal(x.shape).astype(np.float32)
    gx = to_host(layer.backward(device.asarray(gy)))
    np.testing.assert_array_equal(gx == 0, ~kept)
    np.testing.assert_allclose(gx[kept], gy[kept] * scale, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_as_masking_then_scaling(device, dtype):
    # y = x·(keep/(1−p)) is computed as one product; it must equal (x·keep)·(1/(1−p))
    # bit for bit, in the input's memory layout (batch-last inside a network).
    p = 0.3
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 4, 5, 3)).astype(dtype)
    x_batch_last = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    keep = np.random.default_rng(7).random(x.shape, dtype=np.float32) >= p
    scale = dtype(1.0 / (1.0 - p))
    layer = nn.Dropout(p, rng=7)
    y = to_host(layer(device.asarray(x_batch_last)))
    np.testing.assert_array_equal(y, (x * keep.astype(dtype)) * scale)
    gy = rng.standard_normal(x.shape).astype(dtype)
    gx = to_host(layer.backward(device.asarray(gy)))
    np.testing.assert_array_equal(gx, (gy * keep.astype(dtype)) * scale)


def test_eval_mode_and_p_zero_are_the_identity(device):
    x = np.random.default_rng(4).standard_normal((5, 7)).astype(np.float32)
    layer = nn.Dropout(0.5, rng=0)
    layer.eval()
    np.testing.assert_array_equal(to_host(layer(device.asarray(x))), x)
    np.testing.assert_array_equal(to_host(nn.Dropout(0.0, rng=0)(device.asarray(x))), x)
