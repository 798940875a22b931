"""Module bookkeeping: parameter order, gradients, modes, moving/casting, state dicts."""

from __future__ import annotations

import numpy as np
import pytest

from cnnx import nn
from cnnx.backends import to_host


def small_model(seed=0):
    return nn.Sequential(
        nn.Conv2D(1, 2, 3, rng=seed),
        nn.BatchNorm2D(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32, 3, rng=seed + 1),
    )


def test_named_parameters_have_a_fixed_dotted_order():
    model = small_model()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    assert [p.name for p in model.parameters()] == names
    assert [name for name, _ in model.named_buffers()] == ["1.running_mean", "1.running_var"]
    assert model.num_parameters() == (18 + 2) + (2 + 2) + (96 + 3)


def test_nested_sequentials_get_nested_names():
    model = nn.Sequential(nn.Sequential(nn.Linear(2, 2, rng=0)), nn.Linear(2, 1, rng=0))
    assert [n for n, _ in model.named_parameters()] == [
        "0.0.weight",
        "0.0.bias",
        "1.weight",
        "1.bias",
    ]


def test_backward_accumulates_and_zero_grad_clears(device):
    layer = nn.Linear(3, 2, rng=0).to(device)
    x = device.asarray(np.ones((4, 3), dtype=np.float32))
    gy = device.asarray(np.ones((4, 2), dtype=np.float32))
    layer(x)
    layer.backward(gy)
    once = to_host(layer.weight.grad).copy()
    layer(x)
    layer.backward(gy)
    np.testing.assert_allclose(to_host(layer.weight.grad), 2 * once)
    layer.zero_grad()
    assert not to_host(layer.weight.grad).any()
    assert not to_host(layer.bias.grad).any()


def test_train_and_eval_switch_every_descendant():
    model = nn.Sequential(nn.Sequential(nn.Dropout(0.5)), nn.BatchNorm1D(2))
    assert all(m.training for _, m in model.named_modules())
    assert model.eval() is model
    assert not any(m.training for _, m in model.named_modules())
    model.train()
    assert all(m.training for _, m in model.named_modules())


def test_to_dtype_casts_parameters_grads_and_buffers(device):
    model = small_model().to(device, dtype=np.float64)
    for _, p in model.named_parameters():
        assert p.data.dtype == np.float64 and p.grad.dtype == np.float64
    for _, b in model.named_buffers():
        assert b.dtype == np.float64
    x = device.asarray(np.ones((2, 1, 6, 6)))
    assert model(x).dtype == np.float64
    model.to(dtype=np.float32)
    assert all(p.dtype == np.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="floating dtype"):
        model.to(dtype=np.int32)


def test_same_seed_same_weights_different_seed_different_weights():
    a, b, c = small_model(0).state_dict(), small_model(0).state_dict(), small_model(5).state_dict()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_init_scales():
    rng = np.random.default_rng(0)
    he = nn.Conv2D(16, 64, 3, init="he", rng=rng).weight.data
    xavier = nn.Conv2D(16, 64, 3, init="xavier", rng=rng).weight.data
    fixed = nn.Linear(100, 100, init=0.001, rng=rng).weight.data
    fan_in = 16 * 9
    assert he.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.05)
    assert xavier.std() == pytest.approx(1 / np.sqrt(fan_in), rel=0.05)
    assert fixed.std() == pytest.approx(0.001, rel=0.05)
    assert he.dtype == xavier.dtype == fixed.dtype == np.float32


def test_state_dict_round_trip_is_exact_and_returns_host_copies(device):
    src = small_model(1).to(device)
    state = src.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    dst = small_model(2).to(device)
    dst.load_state_dict(state)
    for key, value in dst.state_dict().items():
        np.testing.assert_array_equal(value, state[key])
    state["0.weight"][...] = 123.0  # a copy: the model must not change
    assert not np.any(to_host(src.state_dict()["0.weight"]) == 123.0)


def test_load_state_dict_names_missing_and_unexpected_keys():
    model = small_model()
    state = model.state_dict()
    del state["4.bias"]
    state["9.weight"] = np.zeros(3)
    with pytest.raises(KeyError, match=r"missing: 4\.bias; unexpected: 9\.weight"):
        model.load_state_dict(state)


def test_load_state_dict_names_the_shape_mismatch_and_changes_nothing():
    model = small_model()
    before = model.state_dict()
    state = small_model(3).state_dict()
    state["4.weight"] = np.zeros((3, 31), dtype=np.float32)
    with pytest.raises(
        ValueError, match=r"'4\.weight' has shape \(3, 31\) in the state but \(3, 32\) in the model"
    ):
        model.load_state_dict(state)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_rejects_non_numeric_arrays():
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="expected a numeric array"):
        model.load_state_dict({"weight": np.array([["a", "b"]]), "bias": np.zeros(1)})


def test_repr_lists_children():
    text = repr(small_model())
    assert "(0): Conv2D(1, 2, kernel_size=3)" in text
    assert "(4): Linear(32, 3)" in text


def test_module_subclass_must_call_super_init():
    class Broken(nn.Module):
        def __init__(self):
            self.weight = 1

    with pytest.raises(AttributeError, match="must call super"):
        Broken()


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="Sequential argument 1 is int"):
        nn.Sequential(nn.ReLU(), 3)


def test_backward_params_gives_the_same_parameter_gradients_as_backward(device):
    x = device.asarray(np.random.default_rng(0).random((3, 1, 6, 6), dtype=np.float32))
    grads = []
    for method in ("backward", "backward_params"):
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(32, 8, rng=0), nn.ReLU(), nn.Linear(8, 3, rng=1)
        ).to(device)
        conv = nn.Sequential(nn.Conv2D(1, 2, 3, rng=2), nn.ReLU(), model).to(device)
        y = conv(x)
        result = getattr(conv, method)(device.xp.ones_like(y))
        assert (result is None) == (method == "backward_params")
        grads.append({n: to_host(p.grad) for n, p in conv.named_parameters()})
    for name, value in grads[0].items():
        np.testing.assert_allclose(grads[1][name], value, rtol=1e-6)


def test_backward_params_skips_modules_before_the_first_parameter():
    calls = []

    class Spy(nn.Flatten):
        def backward(self, gy):
            calls.append("flatten")
            return super().backward(gy)

    model = nn.Sequential(Spy(), nn.Linear(4, 2, rng=0))
    y = model(np.ones((2, 1, 2, 2), dtype=np.float32))
    model.backward_params(np.ones_like(y))
    assert calls == []
    assert np.any(model[1].weight.grad != 0)


def _written_order(model, x, gy):
    """Forward and backward through ``model``'s children one by one, as written."""
    layers = list(model._modules.values())
    for layer in layers:
        x = layer.forward(x)
    out = x
    for layer in reversed(layers):
        gy = layer.backward(gy)
    return out, gy


@pytest.mark.parametrize("pool", [(2, None), (3, 2), (2, 1)], ids=["2x2", "3x3s2", "2x2s1"])
@pytest.mark.parametrize("inplace", [True, False])
def test_relu_before_max_pooling_runs_after_it_with_the_same_bits(device, pool, inplace):
    rng = np.random.default_rng(3)
    # Integers make ties within windows, and whole windows of negatives and zeros.
    values = rng.integers(-3, 3, size=(4, 3, 9, 11)).astype(np.float32)
    values[0, 0] = -1.0  # one channel with no positive value at all
    kernel, stride = pool

    def build():
        return nn.Sequential(
            nn.Conv2D(3, 3, 1, init=1.0, rng=0), nn.ReLU(inplace=inplace),
            nn.MaxPool2D(kernel, stride), nn.ReLU(inplace=inplace), nn.MaxPool2D(2),
            nn.Flatten(),
        ).to(device)  # fmt: skip

    fused, written = build(), build()
    identity = device.asarray(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1))
    for model in (fused, written):
        model[0].weight.data[...] = identity  # so that the pooling sees the values
    order = [type(m).__name__ for m in fused._execution_order()]
    assert order == ["Conv2D", "MaxPool2D", "ReLU", "MaxPool2D", "ReLU", "Flatten"]

    x = device.asarray(values)
    y = fused(x)
    gy = device.asarray(rng.standard_normal(tuple(y.shape)).astype(np.float32))
    gx = fused.backward(gy.copy())
    want_y, want_gx = _written_order(written, device.asarray(values), gy.copy())
    assert to_host(want_y).max() > 0 and (to_host(want_y) == 0).any()
    np.testing.assert_array_equal(to_host(y), to_host(want_y))
    np.testing.assert_array_equal(to_host(gx), to_host(want_gx))
    assert np.signbit(to_host(y)).sum() == np.signbit(to_host(want_y)).sum()
    for (name, p), q in zip(fused.named_parameters(), written.parameters(), strict=True):
        np.testing.assert_array_equal(to_host(p.grad), to_host(q.grad), err_msg=name)


def test_backward_params_follows_the_swapped_order(device):
    model = nn.Sequential(
        nn.Conv2D(1, 2, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
        nn.Linear(2 * 4 * 4, 3, rng=1),
    ).to(device)  # fmt: skip
    x = device.asarray(np.random.default_rng(1).standard_normal((2, 1, 8, 8)).astype(np.float32))
    y = model(x)
    model.backward_params(device.xp.ones_like(y))
    with_params = {n: to_host(p.grad).copy() for n, p in model.named_parameters()}
    model.zero_grad()
    model(x)
    model.backward(device.xp.ones_like(y))
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(to_host(p.grad), with_params[n])
