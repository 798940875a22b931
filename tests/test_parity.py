"""CPU and GPU start from the same weights and agree within float32 tolerance."""

from __future__ import annotations

import numpy as np
import pytest

import cnnx
from cnnx import nn, optim
from cnnx.backends import to_host


def model(seed):
    return nn.Sequential(
        nn.Conv2D(1, 4, 3, padding=1, rng=seed),
        nn.BatchNorm2D(4),
        nn.ReLU(),
        nn.MaxPool2D(2),
        nn.Conv2D(4, 6, 3, rng=seed + 1, init="xavier"),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Dropout(0.3, rng=seed),
        nn.Linear(24, 3, rng=seed + 2),  # (8, 8) input -> 6 channels of 2x2
    )


def test_the_parity_model_fits_its_input():
    # The GPU parity tests below skip without a GPU; this keeps their model honest everywhere.
    x = np.zeros((2, 1, 8, 8), dtype=np.float32)
    assert model(0)(x).shape == (2, 3)


@pytest.mark.gpu
def test_same_seed_same_initial_weights_on_cpu_and_gpu(on_device):
    gpu_model = model(3).to("cuda")
    on_device(*(p.data for p in gpu_model.parameters()), cnnx.device("cuda"))
    cpu = model(3).to("cpu").state_dict()
    gpu = gpu_model.state_dict()
    for key in cpu:
        np.testing.assert_array_equal(cpu[key], gpu[key])


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_training_steps_agree_between_cpu_and_gpu(name, on_device):
    x = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    results = {}
    for spec in ("cpu", "cuda"):
        dev = cnnx.device(spec)
        net = model(0).to(dev)
        opt = optim.OPTIMIZERS[name](net.named_parameters(), lr=0.01)
        loss_fn = nn.SoftmaxCrossEntropy()
        losses = []
        for _ in range(3):
            loss = loss_fn(net(dev.asarray(x)), dev.asarray(y))
            opt.zero_grad()
            gx = net.backward(loss_fn.backward())
            opt.step()
            losses.append(float(loss))
        on_device(loss, gx, *(p.data for p in net.parameters()), dev)
        results[spec] = (losses, to_host(gx), net.state_dict())
    np.testing.assert_allclose(results["cpu"][0], results["cuda"][0], rtol=1e-5)
    np.testing.assert_allclose(results["cpu"][1], results["cuda"][1], rtol=1e-4, atol=1e-6)
    for key, value in results["cpu"][2].items():
        np.testing.assert_allclose(value, results["cuda"][2][key], rtol=1e-4, atol=1e-5)
