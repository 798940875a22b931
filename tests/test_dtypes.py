"""Dtype discipline: float32 in, float32 everywhere out; float64 when asked for."""

from __future__ import annotations

import numpy as np
import pytest

from cnnx import nn, optim

LAYERS = [
    (lambda: nn.Conv2D(2, 3, 3, padding=1, rng=0), (2, 2, 5, 5)),
    (lambda: nn.Conv2D(2, 3, 2, stride=2, rng=0), (2, 2, 5, 5)),
    (lambda: nn.MaxPool2D(2), (2, 2, 5, 5)),
    (lambda: nn.MaxPool2D(3, stride=1), (2, 2, 5, 5)),
    (lambda: nn.AvgPool2D(2), (2, 2, 5, 5)),
    (lambda: nn.Linear(4, 3, rng=0), (2, 4)),
    (nn.Flatten, (2, 2, 3, 3)),
    (nn.ReLU, (2, 5)),
    (nn.LeakyReLU, (2, 5)),
    (nn.Sigmoid, (2, 5)),
    (nn.Tanh, (2, 5)),
    (lambda: nn.Dropout(0.5, rng=0), (2, 5)),
    (lambda: nn.BatchNorm1D(5), (4, 5)),
    (lambda: nn.BatchNorm2D(2), (2, 2, 3, 3)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("make", "shape"), LAYERS)
def test_layer_keeps_the_dtype(device, make, shape, dtype):
    layer = make().to(device, dtype=dtype)
    x = device.asarray(np.random.default_rng(0).standard_normal(shape), dtype=dtype)
    for training in (True, False):
        layer.train(training)
        y = layer(x)
        assert y.dtype == dtype, f"forward of {layer!r} gave {y.dtype}"
        gx = layer.backward(device.xp.ones_like(y))
        assert gx.dtype == dtype, f"backward of {layer!r} gave {gx.dtype}"
        for name, p in layer.named_parameters():
            assert p.data.dtype == dtype and p.grad.dtype == dtype, name
        for name, b in layer.named_buffers():
            assert b.dtype == dtype, name


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_full_training_step_stays_float32(device, name):
    model = nn.Sequential(
        nn.Conv2D(1, 2, 3, rng=0),
        nn.BatchNorm2D(2),
        nn.ReLU(),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dropout(0.2, rng=0),
        nn.Linear(8, 3, rng=0),
    ).to(device)
    opt = optim.OPTIMIZERS[name](model.named_parameters(), lr=0.01, weight_decay=1e-4)
    loss_fn = nn.SoftmaxCrossEntropy()
    x = device.asarray(np.random.default_rng(0).random((4, 1, 6, 6), dtype=np.float32))
    for _ in range(2):
        loss = loss_fn(model(x), device.asarray(np.array([0, 1, 2, 0])))
        assert loss.dtype == np.float32
        opt.zero_grad()
        gx = model.backward(loss_fn.backward())
        assert gx.dtype == np.float32
        opt.step()
    for _, p in model.named_parameters():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
    for state in opt.state.values():
        for buf in state.values():
            assert buf.dtype == np.float32
