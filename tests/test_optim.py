"""Each optimizer against its update rule written out by hand, over several steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnx import nn, optim
from cnnx.backends import to_host

STEPS = 5


def gradients(step, shape):
    """A different, deterministic gradient at every step."""
    return np.random.default_rng(100 + step).standard_normal(shape)


def by_hand(name, p0, hyper, wd):
    """Reference trajectory of one parameter, written out formula by formula (float64)."""
    p = p0.copy()
    lr = hyper["lr"]
    v = np.zeros_like(p)
    r = np.zeros_like(p)
    m = np.zeros_like(p)
    history = []
    for t in range(1, STEPS + 1):
        g = gradients(t, p.shape) + wd * p
        if name == "sgd":
            p = p - lr * g
        elif name == "momentum":
            v = hyper["momentum"] * v + g
            p = p - lr * v
        elif name == "nesterov":
            v = hyper["momentum"] * v + g
            p = p - lr * (g + hyper["momentum"] * v)
        elif name == "adagrad":
            r = r + g**2
            p = p - lr * g / (np.sqrt(r) + hyper["eps"])
        elif name == "rmsprop":
            r = hyper["rho"] * r + (1 - hyper["rho"]) * g**2
            p = p - lr * g / (np.sqrt(r) + hyper["eps"])
        elif name == "adam":
            b1, b2 = hyper["beta1"], hyper["beta2"]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + hyper["eps"])
        history.append(p.copy())
    return history


CASES = [
    ("sgd", {"lr": 0.9}),
    ("momentum", {"lr": 0.05, "momentum": 0.9}),
    ("nesterov", {"lr": 0.05, "momentum": 0.8}),
    ("adagrad", {"lr": 0.1, "eps": 1e-10}),
    ("rmsprop", {"lr": 0.001, "rho": 0.9, "eps": 1e-8}),
    ("adam", {"lr": 0.01, "beta1": 0.7, "beta2": 0.99, "eps": 1e-8}),
]


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize(("name", "hyper"), CASES, ids=[c[0] for c in CASES])
def test_update_rule_matches_formula(device, name, hyper, weight_decay):
    p0 = {"w": np.random.default_rng(1).standard_normal((3, 2)), "b": np.array([0.5, -1.0, 2.0])}
    params = {k: nn.Parameter(device.asarray(v.copy()), name=k) for k, v in p0.items()}
    opt = optim.OPTIMIZERS[name](list(params.items()), weight_decay=weight_decay, **hyper)
    expected = {k: by_hand(name, v, hyper, weight_decay) for k, v in p0.items()}
    for t in range(1, STEPS + 1):
        opt.zero_grad()
        for p in params.values():
            p.grad += device.asarray(gradients(t, p.shape))
        opt.step()
        for k, p in params.items():
            np.testing.assert_allclose(to_host(p.data), expected[k][t - 1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("name", "hyper"), CASES, ids=[c[0] for c in CASES])
def test_float32_parameters_stay_float32(name, hyper):
    p = nn.Parameter(np.ones(4, dtype=np.float32), name="p")
    opt = optim.OPTIMIZERS[name]([p], weight_decay=0.01, **hyper)
    p.grad += np.float32(0.5)
    opt.step()
    assert p.data.dtype == np.float32
    assert all(buf.dtype == np.float32 for buf in opt.state["p"].values())


def test_state_is_created_lazily_and_keyed_by_parameter_name():
    model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU(), nn.Linear(2, 1, rng=1))
    opt = optim.Adam(model.parameters(), lr=0.1)
    assert opt.state == {"0.weight": {}, "0.bias": {}, "2.weight": {}, "2.bias": {}}
    opt.step()
    assert set(opt.state["0.weight"]) == {"m", "v"}
    assert opt.state["0.weight"]["m"].shape == (2, 3)


def test_parameters_and_named_parameters_key_state_the_same_way():
    a = nn.Linear(2, 2, rng=0)
    b = nn.Linear(2, 2, rng=0)
    assert [n for n, _ in optim.SGD(a.parameters(), lr=1).params] == [
        n for n, _ in optim.SGD(b.named_parameters(), lr=1).params
    ]


def test_state_dict_round_trip_continues_identically():
    def run(split):
        p = nn.Parameter(np.linspace(-1, 1, 6).reshape(2, 3), name="p")
        opt = optim.Adam([p], lr=0.05, beta1=0.7, beta2=0.99)
        for t in range(1, 7):
            if t == split:
                saved = opt.state_dict()
                p_saved = p.data.copy()
                p = nn.Parameter(p_saved, name="p")
                opt = optim.Adam([p], lr=0.05, beta1=0.7, beta2=0.99)
                opt.load_state_dict(saved)
            opt.zero_grad()
            p.grad += gradients(t, (2, 3))
            opt.step()
        return p.data

    np.testing.assert_array_equal(run(split=None), run(split=4))


def test_load_state_dict_checks_type_names_and_shapes():
    p = nn.Parameter(np.zeros(3), name="p")
    adam = optim.Adam([p], lr=0.1)
    adam.step()
    with pytest.raises(ValueError, match="state is for Adam, not RMSprop"):
        optim.RMSprop([p]).load_state_dict(adam.state_dict())
    q = nn.Parameter(np.zeros(3), name="q")
    with pytest.raises(ValueError, match=r"missing \['q'\], unexpected \['p'\]"):
        optim.Adam([q]).load_state_dict(adam.state_dict())
    r = nn.Parameter(np.zeros(4), name="p")
    with pytest.raises(ValueError, match=r"state p\.m has shape \(3,\), parameter has \(4,\)"):
        optim.Adam([r]).load_state_dict(adam.state_dict())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda ps: optim.SGD(ps, lr=0.0), "lr must be > 0"),
        (lambda ps: optim.SGD(ps, lr=-1), "lr must be > 0"),
        (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-0.1), "weight_decay must be >= 0"),
        (lambda ps: optim.Momentum(ps, momentum=1.0), r"momentum must be in \[0, 1\)"),
        (lambda ps: optim.Nesterov(ps, momentum=-0.1), r"momentum must be in \[0, 1\)"),
        (lambda ps: optim.Adagrad(ps, eps=0), "eps must be > 0"),
        (lambda ps: optim.RMSprop(ps, rho=1.5), r"rho must be in \[0, 1\)"),
        (lambda ps: optim.Adam(ps, beta1=1.0), r"beta1 must be in \[0, 1\)"),
        (lambda ps: optim.Adam(ps, beta2=-0.5), r"beta2 must be in \[0, 1\)"),
        (lambda ps: optim.Adam(ps, eps=-1e-8), "eps must be > 0"),
        (lambda ps: optim.Adam(ps, lr=float("nan")), "lr must be > 0"),
    ],
)
def test_invalid_hyperparameters_name_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make([nn.Parameter(np.zeros(2), name="p")])


def test_params_must_be_parameters():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"model\.parameters"):
        optim.SGD([np.zeros(3)], lr=0.1)


def test_lr_can_be_changed_between_steps():
    p = nn.Parameter(np.zeros(1), name="p")
    opt = optim.SGD([p], lr=1.0)
    p.grad += 1.0
    opt.step()
    opt.lr = 0.5
    opt.step()
    assert p.data[0] == pytest.approx(-1.5)
    assert math.isclose(opt.state_dict()["hyper"]["lr"], 0.5)
    with pytest.raises(ValueError, match="lr must be > 0"):
        opt.lr = 0


def test_parameters_share_one_flat_buffer_and_updates_reach_them():
    model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU(), nn.Linear(2, 1, rng=1))
    opt = optim.SGD(model.parameters(), lr=0.5)
    datas = [p.data for p in model.parameters()]
    assert datas[0].base is not None and all(d.base is datas[0].base for d in datas[1:])
    before = [d.copy() for d in datas]
    for p in model.parameters():
        p.grad += 1.0
    opt.step()
    for p, old in zip(model.parameters(), before, strict=True):
        np.testing.assert_allclose(p.data, old - 0.5)


def test_replacing_parameter_arrays_after_building_the_optimizer_is_handled():
    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    opt = optim.Adam(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad += 1.0
    opt.step()
    m_before = {k: v["m"].copy() for k, v in opt.state.items()}
    model.to(dtype=np.float64)  # replaces every data and grad array
    model[0].weight.data[...] = 0.0
    for p in model.parameters():
        p.grad[...] = 1.0
    opt.step()
    assert model[0].weight.data.dtype == np.float64
    # The step used the new arrays (weights were zeroed) and kept Adam's moments.
    expected_m = 0.9 * m_before["0.weight"] + 0.1 * 1.0
    np.testing.assert_allclose(opt.state["0.weight"]["m"], expected_m, rtol=1e-6)
    assert np.all(model[0].weight.data < 0)
