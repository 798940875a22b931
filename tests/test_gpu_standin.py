"""The CuPy stand-in (tests/support/fakecupy) is as strict as CuPy where cnnx could slip.

These run only where ``cupy`` is the stand-in (the GPU step of ``.ci/run``).
"""

from __future__ import annotations

import copy
import inspect
import operator
import sys
import threading

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture
def cp():
    import cnnx

    cnnx.backends.gpu_status()  # imports cupy through the probe
    if "cupy_stand_in" not in sys.modules:
        pytest.skip("cupy is the real CuPy here, not the stand-in")
    import cupy

    return cupy


@pytest.fixture
def state(cp):
    import cupy_stand_in

    return cupy_stand_in


def test_host_conversion_is_refused(cp):
    a = cp.ones(3, dtype=cp.float32)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array([a[0], a[1]])


@pytest.mark.parametrize("host", [np.ones(3, np.float32), np.array(2.0, np.float32)])
@pytest.mark.parametrize(
    "op", [operator.add, operator.sub, operator.mul, operator.truediv, operator.gt, operator.eq]
)
def test_mixing_host_and_device_arrays_fails_in_both_orders(cp, host, op):
    dev = cp.ones(3, dtype=cp.float32)
    with pytest.raises(TypeError):
        op(dev, host)
    with pytest.raises(TypeError):
        op(host, dev)
    if host.ndim:
        with pytest.raises(TypeError):
            dev @ host
        with pytest.raises(TypeError):
            host @ dev


def test_ufuncs_and_functions_refuse_mixing_but_accept_scalars(cp):
    dev = cp.ones(3, dtype=cp.float32)
    host = np.ones(3, dtype=np.float32)
    for call in (
        lambda: np.add(host, dev),
        lambda: cp.add(host, dev),
        lambda: cp.maximum(dev, host),
        lambda: np.concatenate([host, dev]),
        lambda: cp.concatenate([dev, host]),
        lambda: cp.matmul(dev, host),
    ):
        with pytest.raises(TypeError):
            call()
    assert isinstance(dev * np.float32(2) + 1.5, cp.ndarray)
    assert isinstance(np.float32(2) * dev, cp.ndarray)
    assert isinstance(np.exp(dev), cp.ndarray)  # CuPy implements NumPy's ufunc protocol


def test_host_arrays_cannot_be_assigned_into_device_arrays_and_out_must_be_device(cp):
    dev = cp.zeros((2, 3), dtype=cp.float32)
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        dev[0] = np.ones(3, dtype=np.float32)
    dev[0] = cp.ones(3, dtype=cp.float32)
    dev[1] = np.float32(5)
    with pytest.raises(TypeError, match=r"Output arrays must be cupy\.ndarray"):
        cp.multiply(dev, 2, out=np.empty((2, 3), np.float32))
    with pytest.raises(TypeError):
        dev.sum(axis=0, out=np.empty(3, np.float32))


def test_reductions_and_scalar_indexing_stay_on_the_device_and_reading_them_syncs(cp, state):
    a = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    with state.counting() as counts:
        total, first, biggest = a.sum(), a[0, 0], a.argmax()
        assert counts["syncs"] == 0
    for r in (total, first, biggest):
        assert type(r) is cp.ndarray and r.shape == ()
    with state.counting() as counts:
        values = (float(total), int(biggest), bool(first), first.item())
        host = cp.asnumpy(a)
        also = a.get()
    assert values == (15.0, 5, False, 0.0)
    assert isinstance(host, np.ndarray) and isinstance(also, np.ndarray)
    assert counts["syncs"] == 6


def test_device_context_has_cupys_semantics(cp, state, monkeypatch):
    monkeypatch.setenv("CNNX_FAKE_GPUS", "2")
    assert cp.cuda.runtime.getDeviceCount() == 2
    assert cp.cuda.runtime.getDeviceProperties(1)["name"].startswith(b"cnnx stand-in")
    one = cp.cuda.Device(1)
    with one:
        assert cp.cuda.Device().id == 1
        with one:  # one instance may be entered again: it keeps a stack
            a = cp.zeros(2)
        assert cp.cuda.Device().id == 1
    assert cp.cuda.Device().id == 0 and a.device == one and a.device.id == 1
    one.synchronize()
    with pytest.raises(IndexError):
        one.__exit__(None, None, None)  # exiting more often than entering, as in CuPy
    seen = []
    with one:
        thread = threading.Thread(target=lambda: seen.append(cp.cuda.Device().id))
        thread.start()
        thread.join()
    assert seen == [0]  # the current device is per thread


def test_arrays_on_another_device_than_the_current_one_raise(cp, monkeypatch):
    monkeypatch.setenv("CNNX_FAKE_GPUS", "2")
    with cp.cuda.Device(1):
        b = cp.ones(3)
    a = cp.ones(3)
    with pytest.raises(ValueError, match="Peer access is unavailable"):
        a + b
    with pytest.raises(ValueError, match=r"resides \(1\).*current device \(0\)"):
        b * 2
    assert b.reshape(3, 1).shape == (3, 1)  # views launch no kernel: allowed
    with cp.cuda.Device(1):
        c = b * 2
        moved = cp.asarray(a)  # an explicit copy between devices is fine
    assert c.device.id == 1 and moved.device.id == 1
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        with cp.cuda.Device(2):
            pass


def test_zeros_like_allocates_on_the_current_device_as_cupy_does(cp, monkeypatch):
    monkeypatch.setenv("CNNX_FAKE_GPUS", "2")
    with cp.cuda.Device(1):
        b = cp.ones(3)
    assert cp.zeros_like(b).device.id == 0


def test_only_names_real_cupy_has(cp, state):
    module_names = {n for n in vars(cp) if not n.startswith("_")}
    assert module_names <= state.real_names("cupy"), module_names - state.real_names("cupy")
    array_names = {n for n, _ in inspect.getmembers(cp.ndarray) if not n.startswith("_")}
    extra = array_names - state.real_names("cupy.ndarray")
    assert not extra, extra
    cuda_names = {n for n in vars(cp.cuda) if not n.startswith("_")}
    assert cuda_names <= state.real_names("cupy.cuda") | {"runtime"}
    runtime_names = {n for n in vars(cp.cuda.runtime) if not n.startswith("_")}
    assert runtime_names - {"annotations"} <= state.real_names("cupy.cuda.runtime")
    with pytest.raises(AttributeError, match="has no attribute 'not_a_cupy_name'"):
        cp.not_a_cupy_name  # noqa: B018
    with pytest.raises(AttributeError, match="exists in CuPy but is not implemented"):
        cp.fft  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'numpy_only'"):
        cp.ones(2).numpy_only  # noqa: B018
    assert state.CUPY_VERSION == cp.__version__ == "14.2.0"


def test_copies_and_pickles_stay_on_their_device(cp, state, monkeypatch):
    monkeypatch.setenv("CNNX_FAKE_GPUS", "2")
    with cp.cuda.Device(1):
        b = cp.arange(3)
    assert copy.deepcopy(b).device.id == 1
    with pytest.raises(TypeError, match="unhashable"):
        hash(b)
