"""Every layer's backward against float64 central differences (cnnx.gradcheck).

Tolerance: an analytic gradient must agree with central differences to a
relative error below 1e-6. With float64 and eps = 1e-6 a correct backward
lands near 1e-9; a wrong one near 1e-1 or worse (see the broken layers below,
which must fail the same check).
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnx
from cnnx import nn

TOL = 1e-6


def away_from_kinks(shape, seed):
    """Random values at least 0.05 away from 0, so ReLU kinks sit outside ±eps."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.05, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return x


def assert_gradients_agree(errors):
    assert errors, "gradcheck returned no tensors"
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOL, f"worst gradient error {errors[worst]:.3g} in {worst}: {errors}"


CONV_CASES = [
    # in, out, kernel, stride, padding, input shape
    (1, 3, 3, 1, 0, (2, 1, 6, 6)),
    (3, 3, 2, 1, 0, (3, 3, 2, 2)),
    (2, 4, 3, 2, 1, (2, 2, 7, 7)),
    (2, 3, (3, 2), (2, 1), (1, 0), (1, 2, 6, 5)),
    (1, 2, 5, 1, 2, (2, 1, 5, 5)),
    (3, 2, 1, 2, 0, (4, 3, 5, 5)),
]


@pytest.mark.parametrize(("cin", "cout", "k", "s", "p", "shape"), CONV_CASES)
def test_conv2d(device, cin, cout, k, s, p, shape):
    layer = nn.Conv2D(cin, cout, k, stride=s, padding=p, rng=0).to(device)
    layer.bias.data[...] = device.asarray(np.linspace(-0.5, 0.5, cout))
    assert_gradients_agree(cnnx.gradcheck(layer, device.asarray(away_from_kinks(shape, 1))))


def test_conv2d_backward_in_eval_mode_rebuilds_columns(device):
    layer = nn.Conv2D(2, 3, 3, padding=1, rng=0).to(device).eval()
    assert_gradients_agree(cnnx.gradcheck(layer, device.asarray(away_from_kinks((2, 2, 5, 5), 2))))


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (lambda: nn.MaxPool2D(2), (2, 3, 4, 4)),
        (lambda: nn.MaxPool2D(2), (2, 2, 5, 7)),  # odd sizes: the last row/column is dropped
        (lambda: nn.MaxPool2D(3, stride=1), (1, 2, 5, 5)),  # overlapping windows
        (lambda: nn.MaxPool2D((2, 3), stride=(1, 2)), (2, 1, 5, 7)),
        (lambda: nn.AvgPool2D(2), (2, 3, 4, 4)),
        (lambda: nn.AvgPool2D(3, stride=2), (2, 2, 7, 7)),
        (lambda: nn.AvgPool2D(2, stride=1), (1, 2, 4, 5)),
    ],
)
def test_pooling(device, layer, shape):
    # A permutation of distinct values: no ties, so max-pool is differentiable.
    x = np.random.default_rng(3).permutation(int(np.prod(shape))).reshape(shape) / 10.0
    assert_gradients_agree(cnnx.gradcheck(layer(), device.asarray(x)))


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize(("fin", "fout"), [(5, 3), (1, 2), (12, 7)])
def test_linear(device, batch, fin, fout):
    layer = nn.Linear(fin, fout, rng=0).to(device)
    layer.bias.data[...] = device.asarray(np.arange(fout) * 0.1)
    assert_gradients_agree(cnnx.gradcheck(layer, device.asarray(away_from_kinks((batch, fin), 4))))


@pytest.mark.parametrize(
    "layer",
    [nn.ReLU, lambda: nn.LeakyReLU(0.1), nn.Sigmoid, nn.Tanh, nn.Flatten],
    ids=["relu", "leaky_relu", "sigmoid", "tanh", "flatten"],
)
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5)])
def test_elementwise(device, layer, shape):
    assert_gradients_agree(cnnx.gradcheck(layer(), device.asarray(away_from_kinks(shape, 5))))


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7])
def test_dropout_with_its_mask(device, p):
    layer = nn.Dropout(p, rng=7)
    assert_gradients_agree(cnnx.gradcheck(layer, device.asarray(away_from_kinks((4, 6), 6))))


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm1d(device, training):
    layer = nn.BatchNorm1D(4).to(device).train(training)
    layer.weight.data[...] = device.asarray([0.5, 1.0, 1.5, -2.0])
    layer.bias.data[...] = device.asarray([0.1, -0.2, 0.3, 0.0])
    layer.running_mean[...] = device.asarray([0.1, 0.2, -0.1, 0.0])
    layer.running_var[...] = device.asarray([1.5, 0.5, 2.0, 1.0])
    assert_gradients_agree(cnnx.gradcheck(layer, device.asarray(away_from_kinks((6, 4), 7))))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (5, 2, 1, 3)])
def test_batchnorm2d(device, training, shape):
    layer = nn.BatchNorm2D(shape[1]).to(device).train(training)
    layer.weight.data[...] = device.asarray(np.linspace(0.5, 2.0, shape[1]))
    assert_gradients_agree(cnnx.gradcheck(layer, device.asarray(away_from_kinks(shape, 8))))


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("classes", [2, 4])
def test_softmax_cross_entropy_labels(device, batch, classes):
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((batch, classes)) * 3
    labels = rng.integers(0, classes, size=batch)
    errors = cnnx.gradcheck(
        nn.SoftmaxCrossEntropy(), device.asarray(logits), device.asarray(labels)
    )
    assert_gradients_agree(errors)


def test_softmax_cross_entropy_probability_targets(device):
    rng = np.random.default_rng(10)
    logits = rng.standard_normal((4, 3))
    target = rng.dirichlet(np.ones(3), size=4)
    errors = cnnx.gradcheck(
        nn.SoftmaxCrossEntropy(), device.asarray(logits), device.asarray(target)
    )
    assert_gradients_agree(errors)


def test_whole_models_through_sequential(device):
    model = nn.Sequential(
        nn.Conv2D(1, 3, 3, init="xavier", rng=1),
        nn.Sigmoid(),
        nn.MaxPool2D(2),
        nn.Conv2D(3, 4, 2, padding=1, rng=2),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(36, 3, rng=3),
    ).to(device)
    x = np.random.default_rng(11).standard_normal((2, 1, 6, 6))
    errors = cnnx.gradcheck(model, device.asarray(x))
    assert set(errors) == {"input"} | {name for name, _ in model.named_parameters()}
    assert_gradients_agree(errors)


def test_gradcheck_leaves_the_callers_module_untouched():
    layer = nn.BatchNorm1D(3)
    before = layer.state_dict()
    cnnx.gradcheck(layer, np.random.default_rng(0).standard_normal((4, 3)))
    after = layer.state_dict()
    assert all(after[k].dtype == np.float32 for k in after)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


# -- the check must fail on a wrong backward -----------------------------------------


class ConvFlipsKernel(nn.Conv2D):
    """Input gradient computed with the kernel flipped (true convolution vs correlation)."""

    def backward(self, gy):
        flipped = self.weight.data[:, :, ::-1, ::-1].copy()
        original = self.weight.data
        self.weight.data = flipped
        try:
            return super().backward(gy)
        finally:
            self.weight.data = original


class SigmoidMissingFactor(nn.Sigmoid):
    """Uses y instead of y·(1 − y)."""

    def backward(self, gy):
        return gy * self._saved


class MaxPoolRoutesToAll(nn.MaxPool2D):
    """Sends the gradient to every position of the window."""

    def backward(self, gy):
        gx = np.zeros(self._x_shape)
        for i in range(2):
            for j in range(2):
                gx[:, :, i::2, j::2] = gy
        return gx


class LossWithoutMean(nn.SoftmaxCrossEntropy):
    """Forgets to divide by N."""

    def backward(self, gy=1.0):
        return super().backward(gy) * self._probs.shape[0]


@pytest.mark.parametrize(
    ("layer", "x", "target"),
    [
        (lambda: ConvFlipsKernel(1, 2, (2, 3), rng=0), (2, 1, 5, 5), None),
        (SigmoidMissingFactor, (3, 4), None),
        (lambda: MaxPoolRoutesToAll(2), (1, 2, 4, 4), None),
        (LossWithoutMean, (3, 4), np.array([0, 1, 3])),
    ],
    ids=["conv", "sigmoid", "maxpool", "loss"],
)
def test_a_wrong_backward_fails_the_check(layer, x, target):
    errors = cnnx.gradcheck(
        layer(), np.random.default_rng(12).permutation(np.prod(x)).reshape(x) / 7, target
    )
    assert max(errors.values()) > 1e-2, errors
