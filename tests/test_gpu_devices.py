"""Device bugs the CuPy stand-in found: nested contexts, ``cuda:N``, mismatched inputs, syncs.

Most tests here are ``gpu``-marked. Tests that need two GPUs use the
``two_gpus`` fixture: on the stand-in it switches to two fake GPUs; on a real
machine it needs two GPUs and skips otherwise.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import cnnx
from cnnx import nn, optim
from cnnx.backends import _cupy, device_of, to_host
from cnnx.models.registry import available
from cnnx.nn import functional as F


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 6, 6), dtype=np.float32), rng.integers(0, 3, n)


def small_model(seed=0):
    return nn.Sequential(
        nn.Conv2D(1, 4, 3, rng=seed),
        nn.BatchNorm2D(4),
        nn.ReLU(),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dropout(0.25, rng=seed),
        nn.Linear(16, 3, rng=seed + 1),
    )


# -- results of the cuda case are arrays of that device ------------------------------


LAYERS = [
    ("conv", lambda: nn.Conv2D(2, 3, 3, padding=1, rng=0), (4, 2, 6, 6)),
    ("conv_stride", lambda: nn.Conv2D(2, 3, 3, stride=2, rng=0), (4, 2, 7, 7)),
    ("linear", lambda: nn.Linear(5, 3, rng=0), (4, 5)),
    ("flatten", nn.Flatten, (4, 2, 3, 3)),
    ("relu", nn.ReLU, (4, 2, 3, 3)),
    ("relu_inplace", lambda: nn.ReLU(inplace=True), (4, 2, 3, 3)),
    ("leaky_relu", nn.LeakyReLU, (4, 5)),
    ("sigmoid", nn.Sigmoid, (4, 5)),
    ("tanh", nn.Tanh, (4, 5)),
    ("maxpool", lambda: nn.MaxPool2D(2), (4, 2, 6, 6)),
    ("maxpool_overlap", lambda: nn.MaxPool2D(3, stride=1), (4, 2, 5, 5)),
    ("maxpool_cropped", lambda: nn.MaxPool2D(2), (4, 2, 5, 5)),
    ("avgpool", lambda: nn.AvgPool2D(2), (4, 2, 6, 6)),
    ("batchnorm1d", lambda: nn.BatchNorm1D(5), (4, 5)),
    ("batchnorm2d", lambda: nn.BatchNorm2D(2), (4, 2, 3, 3)),
    ("dropout", lambda: nn.Dropout(0.5, rng=0), (4, 5)),
]


@pytest.mark.parametrize(("name", "make", "shape"), LAYERS, ids=[n for n, _, _ in LAYERS])
def test_every_layer_computes_on_its_device(device, on_device, name, make, shape):
    layer = make().to(device)
    x = device.asarray(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    for training in (True, False):
        layer.train(training)
        y = layer(x.copy())
        gx = layer.backward(device.asarray(np.ones(y.shape, dtype=np.float32)))
        on_device(y, gx, device)
        for p in layer.parameters():
            on_device(p.data, p.grad, device)
        for _, b in layer.named_buffers():
            on_device(b, device)


@pytest.mark.parametrize("model_name", sorted(info.name for info in available()))
def test_every_model_trains_on_its_device(device, on_device, model_name):
    model = cnnx.models.get(model_name, seed=0)
    shape = model.input_shape
    rng = np.random.default_rng(0)
    X = rng.random((8, *shape), dtype=np.float32)
    y = rng.integers(0, model.num_classes, 8)
    opt = optim.Momentum(model.named_parameters(), lr=0.01)
    cnnx.fit(model, opt, (X, y), epochs=1, batch_size=4, device=device)
    on_device(*(p.data for p in model.parameters()), device)
    on_device(*(v for st in opt.state.values() for v in st.values()), device)
    loss_fn = nn.SoftmaxCrossEntropy()
    loss = loss_fn(model(device.asarray(X)), device.asarray(y))
    on_device(loss, loss_fn.backward(), device)


# -- nested and concurrent device contexts --------------------------------------------


def test_device_contexts_nest_and_restore_on_the_cpu():
    dev = cnnx.device("cpu")
    with dev, dev:
        pass


@pytest.mark.gpu
def test_with_device_around_evaluate_nests():
    dev = cnnx.device("cuda")
    X, y = data()
    model = small_model().to(dev)
    with dev:
        with dev:
            pass
        result = cnnx.evaluate(model, X, y)
        probs = cnnx.predict_proba(model, X)
    assert 0.0 <= result.accuracy <= 1.0 and probs.shape == (24, 3)


@pytest.mark.gpu
def test_evaluate_and_predict_from_an_on_epoch_callback():
    dev = cnnx.device("cuda")
    X, y = data()
    model = small_model()
    seen = []

    def on_epoch(record):
        seen.append((cnnx.evaluate(model, X, y).accuracy, cnnx.predict_proba(model, X).shape))

    opt = optim.SGD(model.named_parameters(), lr=0.1)
    cnnx.fit(model, opt, (X, y), epochs=2, batch_size=8, device=dev, on_epoch=on_epoch)
    assert len(seen) == 2 and seen[0][1] == (24, 3)


@pytest.mark.gpu
def test_one_device_object_used_by_two_threads_at_once():
    dev = cnnx.device("cuda")
    errors = []
    barrier = threading.Barrier(2)

    def work():
        try:
            for _ in range(20):
                with dev:
                    barrier.wait(timeout=10)
                    with dev:
                        dev.asarray(np.ones(3, dtype=np.float32)).sum()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- cuda:N: everything lives on the parameters' device ---------------------------------


@pytest.fixture
def two_gpus(monkeypatch):
    """Two GPUs: real ones if there are two, else two stand-in GPUs; yields cuda:1."""
    if "cupy_stand_in" in sys.modules:
        monkeypatch.setenv("CNNX_FAKE_GPUS", "2")
        monkeypatch.setattr(_cupy, "_cached", None)
        monkeypatch.setattr("cnnx.backends.devices._cuda_cache", {})
        F._ONES.clear()
        yield cnnx.device("cuda:1")
        F._ONES.clear()
        _cupy._cached = None
        return
    if cnnx.backends.gpu_status()[0] < 2:
        pytest.skip("needs two GPUs (or the CuPy stand-in)")
    yield cnnx.device("cuda:1")


@pytest.mark.gpu
def test_second_gpu_optimizer_buffers_live_with_the_parameters(two_gpus, on_device):
    model = small_model().to(two_gpus)
    for opt_class in optim.OPTIMIZERS.values():
        opt = opt_class(model.named_parameters(), lr=0.01)  # created outside `with`
        with two_gpus:
            model(two_gpus.asarray(data()[0]))
            model.backward(two_gpus.asarray(np.ones((24, 3), dtype=np.float32)))
        opt.step()  # outside `with` too
        opt.zero_grad()
        on_device(*(p.data for p in model.parameters()), two_gpus)
        on_device(*(v for st in opt.state.values() for v in st.values()), two_gpus)


@pytest.mark.gpu
def test_second_gpu_fit_evaluate_summary_and_forward_outside_with(two_gpus, on_device):
    X, y = data()
    model = cnnx.models.get("simple_cnn", seed=0)
    opt = optim.Adam(model.named_parameters(), lr=0.01)
    history = cnnx.fit(model, opt, (X, y), epochs=2, batch_size=8, device="cuda:1")
    assert len(history) == 2
    on_device(*(p.data for p in model.parameters()), two_gpus)
    assert "total parameters" in model.summary()
    out = model(two_gpus.asarray(X))  # forward outside `with dev`
    on_device(out, two_gpus)
    assert cnnx.evaluate(model, X, y).loss > 0


@pytest.mark.gpu
def test_second_gpu_cached_helper_vectors_follow_the_array(two_gpus, on_device):
    a = two_gpus.asarray(np.ones((4, 8192), dtype=np.float32))
    zero = cnnx.device("cuda:0")
    with zero:  # the current device is another GPU than a's
        vector = F.ones(two_gpus.xp, 8192, np.float32, like=a)
    on_device(vector, two_gpus)
    with two_gpus:
        sums = F.row_sums(a)  # large enough to use the cached ones vector
    on_device(sums, two_gpus)
    np.testing.assert_allclose(to_host(sums), 8192.0)
    b = zero.asarray(np.ones((4, 8192), dtype=np.float32))
    with zero:
        on_device(F.row_sums(b), zero)


@pytest.mark.gpu
def test_second_gpu_backward_outside_with(two_gpus, on_device):
    model = small_model().to(two_gpus)
    out = model(two_gpus.asarray(data()[0]))
    gx = model.backward(two_gpus.asarray(np.ones((24, 3), np.float32)))
    on_device(out, gx, *(p.grad for p in model.parameters()), two_gpus)
    model.zero_grad()


@pytest.mark.gpu
def test_second_gpu_cli_train(two_gpus, tmp_path):
    from click.testing import CliRunner

    from cnnx.cli import main

    args = ["train", "--device", "cuda:1", "--epochs", "1", "--output-dir", str(tmp_path / "r")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


# -- a layer given input on another device than its weights -------------------------------


@pytest.mark.gpu
def test_host_input_to_a_gpu_layer_names_both_devices():
    dev = cnnx.device("cuda")
    layer = nn.Linear(4, 2, rng=0).to(dev)
    with pytest.raises(cnnx.DeviceError) as info:
        layer(np.ones((3, 4), dtype=np.float32))
    message = str(info.value)
    assert "Linear(4, 2)" in message and "cpu" in message and "cuda:0" in message
    assert "Module.to" in message


@pytest.mark.gpu
def test_gpu_input_to_a_cpu_model_names_both_devices():
    dev = cnnx.device("cuda")
    model = small_model()
    with pytest.raises(cnnx.DeviceError, match=r"input lives on cuda:0.*parameters on cpu"):
        model(dev.asarray(data()[0]))


@pytest.mark.gpu
def test_input_on_the_other_gpu_names_both_devices(two_gpus):
    model = small_model().to("cuda:0")
    with pytest.raises(cnnx.DeviceError, match=r"input lives on cuda:1.*parameters on cuda:0"):
        model(two_gpus.asarray(data()[0]))


# -- host copies go through the backend ---------------------------------------------------


@pytest.mark.gpu
def test_optimizer_state_with_device_arrays_loads(on_device):
    dev = cnnx.device("cuda")
    model = small_model().to(dev)
    X, y = data()
    opt = optim.Adam(model.named_parameters(), lr=0.01)
    cnnx.fit(model, opt, (X, y), epochs=1, batch_size=8)
    state = opt.state_dict()
    state["state"] = {
        name: {k: dev.asarray(v) for k, v in st.items()} for name, st in state["state"].items()
    }
    fresh = optim.Adam(model.named_parameters(), lr=0.01)
    fresh.load_state_dict(state)
    for name, st in fresh.state.items():
        for key, value in st.items():
            on_device(value, dev)
            np.testing.assert_array_equal(to_host(value), to_host(opt.state[name][key]))


def test_metrics_take_device_labels(device):
    from cnnx.metrics import confusion_matrix, per_class

    y_true = device.asarray(np.array([0, 1, 2, 2]))
    y_pred = device.asarray(np.array([0, 2, 2, 2]))
    matrix = confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 0, 1], [0, 0, 2]])
    np.testing.assert_allclose(per_class(device.asarray(matrix)).recall, [1.0, 0.0, 1.0])


# -- convolution errors ------------------------------------------------------------------


def test_conv_too_small_input_still_says_so():
    with pytest.raises(ValueError, match="too small"):
        nn.Conv2D(1, 2, 5)(np.zeros((1, 1, 3, 3), dtype=np.float32))


def test_conv_other_value_errors_are_not_relabelled(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("something else went wrong")

    monkeypatch.setattr(F, "im2col", broken)
    with pytest.raises(ValueError) as info:
        nn.Conv2D(1, 2, 3)(np.zeros((1, 1, 6, 6), dtype=np.float32))
    assert "something else went wrong" in str(info.value)
    assert "too small" not in str(info.value)


# -- dropout ------------------------------------------------------------------------------


def test_dropout_same_seed_same_mask_on_every_device(device):
    x = device.asarray(np.ones((4, 3, 5, 7), dtype=np.float32))
    layer = nn.Dropout(0.4, rng=7)
    y = to_host(layer(x))
    reference = nn.Dropout(0.4, rng=7)(np.ones((4, 3, 5, 7), dtype=np.float32))
    np.testing.assert_array_equal(y, reference)
    kept = reference != 0
    np.testing.assert_allclose(reference[kept], 1 / 0.6, rtol=1e-6)
    gx = to_host(layer.backward(device.asarray(np.full((4, 3, 5, 7), 2.0, np.float32))))
    np.testing.assert_allclose(gx, 2.0 * reference, rtol=1e-6)


@pytest.mark.gpu
def test_dropout_moves_a_compact_mask_not_a_float_one(monkeypatch):
    dev = cnnx.device("cuda")
    x = dev.asarray(np.ones((64, 32, 8, 8), dtype=np.float32))
    sent = []
    original = dev.xp.asarray

    def recording(a, *args, **kwargs):
        if isinstance(a, np.ndarray):
            sent.append(a.nbytes)
        return original(a, *args, **kwargs)

    monkeypatch.setattr(dev.xp, "asarray", recording)
    nn.Dropout(0.5, rng=0)(x)
    # A float32 mask would be 4 bytes per element; a bit mask is 1/8 byte.
    assert sum(sent) <= x.size // 8 + 64, sent


# -- synchronisations ---------------------------------------------------------------------


def _syncs_of_one_epoch(n, batch_size):
    import cupy_stand_in

    X, y = data(n)
    model = small_model()
    opt = optim.Adam(model.named_parameters(), lr=0.01)
    cnnx.fit(model, opt, (X, y), epochs=1, batch_size=batch_size, device="cuda")  # warm-up
    with cupy_stand_in.counting() as counts:
        cnnx.fit(model, opt, (X, y), epochs=1, batch_size=batch_size, device="cuda")
    return counts["syncs"]


@pytest.mark.gpu
def test_one_epoch_syncs_a_bounded_number_of_times_whatever_the_batch_count():
    if "cupy_stand_in" not in sys.modules:
        pytest.skip("counting synchronisations needs the CuPy stand-in")
    few = _syncs_of_one_epoch(64, 32)  # 2 minibatches
    many = _syncs_of_one_epoch(64, 4)  # 16 minibatches
    print(f"device->host syncs per epoch: {few} with 2 minibatches, {many} with 16")
    assert few == many <= 4, (few, many)


def test_device_mask_agrees_with_the_plain_transfer(device, on_device):
    from cnnx.backends.devices import mask_plain

    keep = np.random.default_rng(0).random((3, 5, 7)) >= 0.3
    fast, plain = device.mask(keep), mask_plain(device, keep)
    on_device(fast, plain, device)
    assert fast.dtype == plain.dtype == np.uint8 and fast.shape == keep.shape
    np.testing.assert_array_equal(to_host(fast), to_host(plain))
    np.testing.assert_array_equal(to_host(fast), keep)


def test_device_of_host_arrays_is_the_cpu():
    assert device_of(np.zeros(2)) == cnnx.device("cpu")
