"""``Sequential.trace`` / ``activations`` / ``gradients``: what they record, and what they leave."""

from __future__ import annotations

import numpy as np
import pytest

from cnnx import models, nn
from cnnx.backends import to_host


def _data(n=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1, 6, 6), dtype=np.float32)
    y = rng.integers(0, 3, size=n)
    return X, y


def test_activations_are_keyed_host_copies_in_eval_mode(device):
    model = models.get("enhanced_cnn", seed=0).to(device)
    X, _ = _data()
    model.train()
    acts = model.activations(device.asarray(X))
    assert list(acts) == [str(i) for i in range(7)]
    assert all(isinstance(a, np.ndarray) for a in acts.values())
    assert acts["0"].shape == (5, 4, 4, 4) and acts["6"].shape == (5, 3)
    # Conv output kept before the in-place ReLU overwrote it: negatives survive in "0".
    assert acts["0"].min() < 0 and acts["1"].min() == 0
    np.testing.assert_array_equal(acts["1"], np.maximum(acts["0"], 0))
    assert model.training  # mode restored
    logits = to_host(model.eval()(device.asarray(X)))
    np.testing.assert_allclose(acts["6"], logits, rtol=1e-6)


def test_activations_in_batches_match_one_pass():
    model = models.get("simple_cnn", seed=1)
    X, _ = _data(7)
    whole, parts = model.activations(X), model.activations(X, batch_size=3)
    for name in whole:
        np.testing.assert_allclose(parts[name], whole[name], rtol=1e-5, atol=1e-6)


def test_gradients_match_the_training_backward_and_leave_grad_untouched(device):
    model = models.get("enhanced_cnn", seed=2).to(device)
    X, y = _data(6, seed=3)
    before = {name: (p.grad, to_host(p.grad).copy()) for name, p in model.named_parameters()}
    trace = model.trace(device.asarray(X), device.asarray(y))
    for name, p in model.named_parameters():
        assert p.grad is before[name][0]  # the same array object ...
        np.testing.assert_array_equal(to_host(p.grad), before[name][1])  # ... unchanged

    model.eval()
    loss_fn = nn.SoftmaxCrossEntropy()
    loss = loss_fn(model(device.asarray(X)), device.asarray(y))
    model.zero_grad()
    gx = model.backward(loss_fn.backward())
    assert trace.loss == pytest.approx(float(loss), rel=1e-6)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(trace.param_grads[name], to_host(p.grad), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(trace.input_grad, to_host(gx), rtol=1e-5, atol=1e-7)


def test_gradients_pair_outputs_with_their_gradients():
    model = models.get("simple_cnn", seed=0)
    X, y = _data(4)
    pairs = model.gradients(X, y)
    assert list(pairs) == [str(i) for i in range(6)]
    out, grad = pairs["5"]
    probs = np.exp(out - out.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    expected = (probs - np.eye(3)[y]) / len(y)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)
    # The gradient into a Sigmoid's input is the output gradient times y(1 - y).
    out4, g4 = pairs["4"]
    np.testing.assert_allclose(pairs["3"][1], g4 * out4 * (1 - out4), rtol=1e-5, atol=1e-8)


def test_nested_sequential_names_are_dotted():
    inner = nn.Sequential(nn.Conv2D(1, 2, 3, rng=0), nn.ReLU())
    model = nn.Sequential(inner, nn.Flatten(), nn.Linear(32, 3, rng=1))
    X, _ = _data(2)
    assert list(model.activations(X)) == ["0.0", "0.1", "1", "2"]
