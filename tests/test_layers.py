"""Forward semantics of the layers, shape errors, and the loss."""

from __future__ import annotations

import numpy as np
import pytest

from cnnx import nn
from cnnx.backends import to_host


def torch_style_conv(x, w, b, stride, padding):
    """Direct definition: y[n,o,i,j] = sum_c,u,v w[o,c,u,v]·x_pad[n,c,i·s+u,j·s+v] + b[o]."""
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            y[:, :, i, j] = np.einsum("ncuv,ocuv->no", patch, w) + b
    return y


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 1), (1, 2)])
def test_conv2d_forward_matches_definition(device, stride, padding):
    layer = nn.Conv2D(3, 4, 3, stride=stride, padding=padding, rng=0).to(device)
    layer.bias.data[...] = device.asarray([0.1, -0.2, 0.3, 0.0])
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 5)).astype(np.float32)
    y = layer(device.asarray(x))
    expected = torch_style_conv(
        x, to_host(layer.weight.data), to_host(layer.bias.data), stride, padding
    )
    assert y.shape == expected.shape
    np.testing.assert_allclose(to_host(y), expected, rtol=1e-5, atol=1e-5)


def test_maxpool_forward_and_first_maximum_on_ties(device):
    x = np.array([[[[1, 3, 2, 2], [3, 0, 2, 2], [0, 0, 5, 1], [0, 0, 1, 5]]]], dtype=np.float32)
    pool = nn.MaxPool2D(2)
    y = pool(device.asarray(x))
    np.testing.assert_array_equal(to_host(y), [[[[3, 2], [0, 5]]]])
    gx = to_host(
        pool.backward(device.asarray(np.array([[[[10, 20], [30, 40]]]], dtype=np.float32)))
    )
    # Each window sends its gradient to exactly one position: the first maximum in
    # row-major order (the 3 at (0,1), the 2 at (0,2), the 0 at (2,0), the 5 at (2,2)).
    expected = np.zeros((1, 1, 4, 4), dtype=np.float32)
    expected[0, 0, 0, 1] = 10
    expected[0, 0, 0, 2] = 20
    expected[0, 0, 2, 0] = 30
    expected[0, 0, 2, 2] = 40
    np.testing.assert_array_equal(gx, expected)


def test_maxpool_overlapping_windows_accumulate(device):
    x = np.zeros((1, 1, 3, 3), dtype=np.float32)
    x[0, 0, 1, 1] = 1.0  # the centre is the maximum of all four 2×2 windows
    pool = nn.MaxPool2D(2, stride=1)
    pool(device.asarray(x))
    gx = to_host(pool.backward(device.asarray(np.ones((1, 1, 2, 2), dtype=np.float32))))
    assert gx[0, 0, 1, 1] == 4.0
    assert gx.sum() == 4.0


def test_avgpool_forward(device):
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    y = nn.AvgPool2D(2)(device.asarray(x))
    np.testing.assert_allclose(to_host(y), [[[[2.5, 4.5], [10.5, 12.5]]]])


def test_linear_uses_pytorch_weight_layout(device):
    layer = nn.Linear(3, 2, rng=0).to(device)
    w = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]], dtype=np.float32)
    layer.weight.data[...] = device.asarray(w)
    layer.bias.data[...] = device.asarray([0.5, -0.5])
    y = layer(device.asarray(np.array([[1.0, 1.0, 1.0]], dtype=np.float32)))
    np.testing.assert_allclose(to_host(y), [[6.5, -0.5]])


def test_inplace_relu_gives_the_same_numbers_and_reuses_the_arrays(device):
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    gy = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    plain, inplace = nn.ReLU(), nn.ReLU(inplace=True)
    y_plain = to_host(plain(device.asarray(x)))
    x_dev, gy_dev = device.asarray(x.copy()), device.asarray(gy.copy())
    y = inplace(x_dev)
    assert y is x_dev  # the input was overwritten
    np.testing.assert_array_equal(to_host(y), y_plain)
    np.testing.assert_array_equal(
        to_host(inplace.backward(gy_dev)), to_host(plain.backward(device.asarray(gy)))
    )
    assert repr(inplace) == "ReLU(inplace=True)"


def test_sigmoid_is_finite_and_accurate_for_large_inputs(device):
    x = np.array([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], dtype=np.float32)
    y = to_host(nn.Sigmoid()(device.asarray(x)))
    assert np.all(np.isfinite(y))
    x64 = x.astype(np.float64)
    e = np.exp(-np.abs(x64))
    reference = np.where(x64 >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    np.testing.assert_allclose(y, reference, atol=1e-7)


def test_dropout_is_inverted_and_identity_in_eval(device):
    layer = nn.Dropout(0.25, rng=0)
    x = np.ones((200, 50), dtype=np.float32)
    y = to_host(layer(device.asarray(x)))
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1.0 / 0.75)
    assert 0.70 < kept.mean() < 0.80
    gx = to_host(layer.backward(device.asarray(np.ones_like(x))))
    np.testing.assert_array_equal(gx, y)  # same mask, same scale
    layer.eval()
    np.testing.assert_array_equal(to_host(layer(device.asarray(x))), x)


def test_dropout_masks_are_reproducible_from_the_seed():
    x = np.ones((10, 10), dtype=np.float32)
    a = nn.Dropout(0.5, rng=3)(x)
    b = nn.Dropout(0.5, rng=3)(x)
    c = nn.Dropout(0.5, rng=4)(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_batchnorm2d_normalises_per_channel_and_tracks_running_stats(device):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 4, 4)).astype(np.float32) * np.array([1, 5, 0.2]).reshape(
        1, 3, 1, 1
    ).astype(np.float32) + np.array([0, 10, -3], dtype=np.float32).reshape(1, 3, 1, 1)
    bn = nn.BatchNorm2D(3).to(device)
    y = to_host(bn(device.asarray(x)))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, atol=1e-3)
    np.testing.assert_allclose(to_host(bn.running_mean), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    unbiased = x.var(axis=(0, 2, 3)) * m / (m - 1)
    np.testing.assert_allclose(to_host(bn.running_var), 0.9 + 0.1 * unbiased, rtol=1e-5)
    bn.eval()
    y_eval = to_host(bn(device.asarray(x)))
    rm, rv = to_host(bn.running_mean), to_host(bn.running_var)
    expected = (x - rm.reshape(1, 3, 1, 1)) / np.sqrt(rv.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(y_eval, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("layer", "bad_input", "message"),
    [
        (
            lambda: nn.Conv2D(1, 3, 3),
            np.zeros((2, 2, 6, 6)),
            r"Conv2D\(1, 3, kernel_size=3\): expected input of shape \(N, 1, H, W\), "
            r"got \(2, 2, 6, 6\)",
        ),
        (
            lambda: nn.Conv2D(1, 3, 3),
            np.zeros((1, 6, 6)),
            r"expected input of shape \(N, 1, H, W\), got \(1, 6, 6\)",
        ),
        (
            lambda: nn.Conv2D(1, 3, 3),
            np.zeros((1, 1, 2, 6)),
            r"Conv2D\(1, 3, kernel_size=3\): input of shape \(1, 1, 2, 6\) is too small",
        ),
        (
            lambda: nn.Linear(4, 2),
            np.zeros((3, 5)),
            r"Linear\(4, 2\): expected input of shape \(N, 4\), got \(3, 5\)",
        ),
        (
            lambda: nn.MaxPool2D(2),
            np.zeros((2, 6, 6)),
            r"MaxPool2D\(kernel_size=2\): expected input of shape \(N, C, H, W\)",
        ),
        (lambda: nn.MaxPool2D(3), np.zeros((1, 1, 2, 2)), r"smaller than the window 3×3"),
        (
            lambda: nn.BatchNorm2D(3),
            np.zeros((2, 4, 2, 2)),
            r"BatchNorm2D\(3.*expected input of shape \(N, 3, H, W\)",
        ),
        (lambda: nn.BatchNorm1D(3), np.zeros((1, 3)), r"more than one value per feature"),
        (lambda: nn.Flatten(), np.zeros(3), r"Flatten\(\): expected input with a batch axis"),
    ],
)
def test_shape_errors_name_the_layer_and_both_shapes(layer, bad_input, message):
    with pytest.raises(ValueError, match=message):
        layer()(bad_input.astype(np.float32))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: nn.Conv2D(0, 3, 3), "channels must be positive"),
        (lambda: nn.Conv2D(1, 3, 0), "kernel_size >= 1"),
        (lambda: nn.Conv2D(1, 3, 3, stride=0), "stride >= 1"),
        (lambda: nn.Conv2D(1, 3, 3, init="glorot"), "unknown init 'glorot'"),
        (lambda: nn.Conv2D(1, 3, 3, init=-1.0), "init std must be a positive number"),
        (lambda: nn.Linear(0, 3), "sizes must be positive"),
        (lambda: nn.Dropout(1.0), r"Dropout p must be in \[0, 1\)"),
        (lambda: nn.LeakyReLU(-0.1), "negative_slope must be >= 0"),
        (lambda: nn.MaxPool2D(2, stride=0), "stride >= 1"),
    ],
)
def test_bad_constructor_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(
        RuntimeError, match=r"Conv2D\(1, 2, kernel_size=3\): backward\(\) called before forward\(\)"
    ):
        nn.Conv2D(1, 2, 3).backward(np.zeros((1, 2, 1, 1), dtype=np.float32))


# -- loss -------------------------------------------------------------------------------


def test_loss_value_and_gradient_by_hand(device):
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.2]], dtype=np.float32)
    labels = np.array([0, 2])
    loss_fn = nn.SoftmaxCrossEntropy()
    loss = loss_fn(device.asarray(logits), device.asarray(labels))
    assert loss.shape == ()
    assert loss.dtype == np.float32
    p = np.exp(logits.astype(np.float64))
    p /= p.sum(axis=1, keepdims=True)
    expected = -(np.log(p[0, 0]) + np.log(p[1, 2])) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(to_host(loss_fn.backward()), (p - onehot) / 2, rtol=1e-5, atol=1e-7)


def test_loss_with_onehot_target_equals_loss_with_labels(device):
    rng = np.random.default_rng(0)
    logits = device.asarray(rng.standard_normal((5, 4)).astype(np.float32))
    labels = rng.integers(0, 4, size=5)
    a_fn, b_fn = nn.SoftmaxCrossEntropy(), nn.SoftmaxCrossEntropy()
    a = a_fn(logits, device.asarray(labels))
    b = b_fn(logits, device.asarray(np.eye(4, dtype=np.float32)[labels]))
    assert float(a) == pytest.approx(float(b), rel=1e-6)
    np.testing.assert_allclose(to_host(a_fn.backward()), to_host(b_fn.backward()), atol=1e-7)


def test_loss_is_finite_for_huge_logits(device):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=np.float32)
    loss_fn = nn.SoftmaxCrossEntropy()
    loss = float(loss_fn(device.asarray(logits), device.asarray(np.array([1, 0]))))
    assert np.isfinite(loss)
    assert loss == pytest.approx((2e4 + (2e4 + np.log(2))) / 2, rel=1e-6)
    assert np.all(np.isfinite(to_host(loss_fn.backward())))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (np.array([0, 3]), r"label 3 is outside \[0, 2\]"),
        (np.array([-1, 0]), r"label -1 is outside \[0, 2\]"),
        (np.array([0, 1, 2]), r"target must be integer labels of shape \(2,\)"),
        (np.zeros((2, 4), dtype=np.float32), r"float one-hot/probability matrix of shape \(2, 3\)"),
        (np.array([0.0, 1.0]), "got shape"),
    ],
)
def test_loss_rejects_bad_targets(target, message):
    with pytest.raises(ValueError, match=message):
        nn.SoftmaxCrossEntropy()(np.zeros((2, 3), dtype=np.float32), target)


def test_loss_rejects_logits_that_are_not_2d():
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C\)"):
        nn.SoftmaxCrossEntropy()(np.zeros((2, 3, 1), dtype=np.float32), np.array([0, 1]))


def test_scratch_memory_never_leaks_into_outputs(device):
    # Layers reuse working arrays between calls; what they return must stay valid.
    conv = nn.Conv2D(1, 2, 3, rng=0).to(device)
    pool = nn.MaxPool2D(2)
    x1 = device.asarray(np.random.default_rng(0).random((2, 1, 6, 6), dtype=np.float32))
    x2 = device.asarray(np.random.default_rng(1).random((2, 1, 6, 6), dtype=np.float32))
    y1 = pool(conv(x1))
    kept = to_host(y1).copy()
    g1 = conv.backward(pool.backward(device.xp.ones_like(y1)))
    kept_g = to_host(g1).copy()
    y2 = pool(conv(x2))
    conv.backward(pool.backward(device.xp.ones_like(y2)))
    np.testing.assert_array_equal(to_host(y1), kept)
    np.testing.assert_array_equal(to_host(g1), kept_g)
