"""The fully worked example of the lecture slides (seed 001, section 5), as a golden test.

Network: 4×4 input -> Conv 3×3 (filter of ones on the corners and centre,
bias 1) -> ReLU -> MaxPool 2×2 -> Flatten -> Dense 1->2 (weights [0.5, -0.5],
bias [0.1, 0.2]) -> softmax cross-entropy against class 0 -> one SGD step, lr 0.1.

Expected values are written in closed form from p1 = softmax([5.6, -5.3])[1]
= 1/(1 + e^10.9) ≈ 1.8410e-5, not taken from cnnx. Where the slides differ:

- They round p1 to 0.00002, so every later gradient inherits a 9% error
  (e.g. dL/dW_dense = 11·p1 = 2.025e-4, shown as 0.00022).
- Their dense weight gradient [[0.00022, 0.00022]] drops the sign of the first
  entry: it is [-2.025e-4, +2.025e-4] (their update step then uses the right signs).
- Their conv filter gradient on the update slide has non-zero entries at (1, 0)
  and (2, 1), where the gradient is exactly zero (the input there is 0); the
  slide before it has these right.
- Their updated conv weights and bias forget the learning rate: 1.00006 is
  1 + 3·0.00002, but the step is 0.1·3·p1, giving 1.0000055; the bias becomes
  1 + 0.1·p1 = 1.0000018, not 1.00002.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnx import nn, optim
from cnnx.backends import to_host

X = np.array([[1, 2, 0, 1], [3, 1, 1, 5], [0, 2, 2, 0], [1, 0, 3, 1]], dtype=np.float64)
FILTER = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=np.float64)
P1 = 1.0 / (1.0 + math.exp(10.9))


def build(device):
    model = nn.Sequential(
        nn.Conv2D(1, 1, 3),
        nn.ReLU(),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Linear(1, 2),
    ).to(device, dtype=np.float64)
    conv, dense = model[0], model[4]
    conv.weight.data[...] = device.asarray(FILTER.reshape(1, 1, 3, 3))
    conv.bias.data[...] = 1.0
    dense.weight.data[...] = device.asarray(np.array([[0.5], [-0.5]]))
    dense.bias.data[...] = device.asarray(np.array([0.1, 0.2]))
    return model


def test_forward_values_exactly(device):
    model = build(device)
    x = device.asarray(X.reshape(1, 1, 4, 4))
    conv_out = model[0](x)
    np.testing.assert_array_equal(to_host(conv_out)[0, 0], [[5, 7], [11, 10]])
    pooled = model[2](model[1](conv_out))
    assert to_host(pooled).item() == 11
    logits = to_host(model(x))[0]
    np.testing.assert_allclose(logits, [5.6, -5.3], rtol=0, atol=1e-15)


def test_gradients_precisely(device):
    model = build(device)
    loss_fn = nn.SoftmaxCrossEntropy()
    loss = loss_fn(model(device.asarray(X.reshape(1, 1, 4, 4))), device.asarray(np.array([0])))
    assert float(loss) == pytest.approx(math.log1p(math.exp(-10.9)), rel=1e-12)
    g_logits = loss_fn.backward()
    np.testing.assert_allclose(to_host(g_logits)[0], [-P1, P1], rtol=1e-9)
    gx = model.backward(g_logits)

    conv, dense = model[0], model[4]
    np.testing.assert_allclose(to_host(dense.weight.grad), [[-11 * P1], [11 * P1]], rtol=1e-9)
    np.testing.assert_allclose(to_host(dense.bias.grad), [-P1, P1], rtol=1e-9)
    # Only the bottom-left conv output (11) wins the pool, so only the window
    # X[1:4, 0:3] receives gradient: dL/dZ = dL/dflat = 0.5·(-P1) + (-0.5)·P1 = -P1.
    expected_gw = -P1 * X[1:4, 0:3]
    np.testing.assert_allclose(to_host(conv.weight.grad)[0, 0], expected_gw, rtol=1e-9, atol=1e-20)
    assert to_host(conv.weight.grad)[0, 0, 1, 0] == 0.0
    assert to_host(conv.weight.grad)[0, 0, 2, 1] == 0.0
    np.testing.assert_allclose(to_host(conv.bias.grad), [-P1], rtol=1e-9)
    expected_gx = np.zeros((4, 4))
    expected_gx[1:4, 0:3] = -P1 * FILTER
    np.testing.assert_allclose(to_host(gx)[0, 0], expected_gx, rtol=1e-9, atol=1e-20)


def test_one_sgd_step(device):
    model = build(device)
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    loss_fn(model(device.asarray(X.reshape(1, 1, 4, 4))), device.asarray(np.array([0])))
    opt.zero_grad()
    model.backward(loss_fn.backward())
    opt.step()
    conv, dense = model[0], model[4]
    np.testing.assert_allclose(
        to_host(dense.weight.data), [[0.5 + 1.1 * P1], [-0.5 - 1.1 * P1]], rtol=1e-12
    )
    np.testing.assert_allclose(
        to_host(dense.bias.data), [0.1 + 0.1 * P1, 0.2 - 0.1 * P1], rtol=1e-12
    )
    np.testing.assert_allclose(
        to_host(conv.weight.data)[0, 0], FILTER + 0.1 * P1 * X[1:4, 0:3], rtol=1e-9, atol=1e-20
    )
    assert to_host(conv.weight.data)[0, 0, 0, 0] == pytest.approx(1.0000055, abs=1e-7)
    assert to_host(conv.bias.data)[0] == pytest.approx(1.0000018, abs=1e-7)
