"""Device resolution, the CuPy probe and array-module lookup."""

from __future__ import annotations

import sys
import threading
import types

import numpy as np
import pytest

import cnnx
from cnnx.backends import _cupy, device_of, get_array_module, to_host


def test_cpu_device_attributes():
    dev = cnnx.device("cpu")
    assert dev.kind == "cpu"
    assert dev.index is None
    assert dev.xp is np
    assert str(dev) == "cpu"
    assert repr(dev) == "Device('cpu')"
    assert cnnx.device(dev) is dev
    assert cnnx.device("CPU") == dev


def test_cpu_asarray_and_to_host_keep_values_and_dtype():
    dev = cnnx.device("cpu")
    a = dev.asarray([[1, 2], [3, 4]], dtype=np.float32)
    assert a.dtype == np.float32
    host = dev.to_host(a)
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, [[1, 2], [3, 4]])
    dev.synchronize()  # a no-op on the CPU, but part of the interface


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cpu:1", "auto:0", "", "tpu"])
def test_bad_spec_is_a_value_error_naming_it(spec):
    with pytest.raises(ValueError, match="unknown device"):
        cnnx.device(spec)


def test_non_string_spec_is_a_type_error():
    with pytest.raises(TypeError, match="device spec"):
        cnnx.device(3)


@pytest.fixture
def fake_probe(monkeypatch):
    """Re-run the probe against a fake ``cupy`` module (or none) and restore the cache after."""

    def install(module):
        monkeypatch.setitem(sys.modules, "cupy", module)
        monkeypatch.setattr(_cupy, "_cached", None)
        monkeypatch.setattr("cnnx.backends.devices._cuda_cache", {})

    yield install
    _cupy._cached = None


def test_cuda_without_cupy_says_not_installed_and_how_to_fix(fake_probe):
    fake_probe(None)  # None in sys.modules makes `import cupy` fail like a missing package
    with pytest.raises(cnnx.DeviceError) as info:
        cnnx.device("cuda")
    message = str(info.value)
    assert "'cuda'" in message
    assert "CuPy is not installed" in message
    assert 'pip install "cnnx[cuda12]"' in message


def _fake_cupy(device_count=None, count_error=None, kernel_ok=True, current=None):
    cupy = types.ModuleType("cupy")
    current = current if current is not None else threading.local()

    def get_count():
        if count_error is not None:
            raise count_error
        return device_count

    class _Dev:
        # CuPy's semantics: each instance keeps its own stack of previous devices.
        def __init__(self, index):
            self.index = index
            self.stack = []

        def __enter__(self):
            self.stack.append(getattr(current, "id", 0))
            current.id = self.index
            return self

        def __exit__(self, *exc):
            current.id = self.stack.pop()  # IndexError when exited more than entered
            return False

    runtime = types.SimpleNamespace(
        getDeviceCount=get_count, getDeviceProperties=lambda i: {"name": b"Fake GPU"}
    )
    cupy.cuda = types.SimpleNamespace(runtime=runtime, Device=_Dev)
    cupy.float32 = np.float32

    def arange(n, dtype=None):
        if not kernel_ok:
            raise RuntimeError("nvrtc: compilation failed")
        return np.arange(n, dtype=dtype)

    cupy.arange = arange

    class ndarray:
        def __init__(self, index=0):
            self.device = types.SimpleNamespace(id=index)

    cupy.ndarray = ndarray
    return cupy


def test_cuda_with_no_gpu_says_so(fake_probe):
    fake_probe(_fake_cupy(device_count=0))
    with pytest.raises(cnnx.DeviceError, match="no NVIDIA GPU is visible"):
        cnnx.device("cuda")
    assert cnnx.device("auto") == cnnx.device("cpu")


def test_cuda_with_broken_driver_says_so(fake_probe):
    fake_probe(_fake_cupy(count_error=RuntimeError("cudaErrorInsufficientDriver")))
    with pytest.raises(cnnx.DeviceError, match=r"CUDA driver.*cudaErrorInsufficientDriver"):
        cnnx.device("cuda:0")


def test_cuda_with_broken_install_says_so(fake_probe):
    fake_probe(_fake_cupy(device_count=1, kernel_ok=False))
    with pytest.raises(cnnx.DeviceError, match=r"cannot run on it.*nvrtc"):
        cnnx.device("cuda")


def test_cuda_index_out_of_range_lists_gpus(fake_probe):
    fake_probe(_fake_cupy(device_count=1))
    dev = cnnx.device("cuda")
    assert (dev.kind, dev.index, str(dev)) == ("cuda", 0, "cuda:0 (Fake GPU)")
    assert cnnx.device("auto") == dev
    with pytest.raises(
        cnnx.DeviceError, match=r"'cuda:2' does not exist: 1 GPU\(s\) visible: cuda:0 \(Fake GPU\)"
    ):
        cnnx.device("cuda:2")


def test_probe_runs_once_and_is_cached(fake_probe):
    calls = []
    cupy = _fake_cupy(device_count=0)
    original = cupy.cuda.runtime.getDeviceCount

    def counting():
        calls.append(1)
        return original()

    cupy.cuda.runtime.getDeviceCount = counting
    fake_probe(cupy)
    for _ in range(3):
        with pytest.raises(cnnx.DeviceError):
            cnnx.device("cuda")
    assert len(calls) == 1


def test_get_array_module_numpy_and_non_arrays():
    assert get_array_module() is np
    assert get_array_module(np.zeros(2), 3.0, None) is np
    assert get_array_module(np.float32(1)) is np


def test_get_array_module_mixing_devices_names_each_argument(fake_probe):
    cupy = _fake_cupy(device_count=1)
    fake_probe(cupy)
    gpu_array = cupy.ndarray(index=0)
    assert get_array_module(gpu_array) is cupy
    with pytest.raises(TypeError) as info:
        get_array_module(np.zeros(3), 1.0, gpu_array)
    message = str(info.value)
    assert "argument 0 is a numpy.ndarray on the CPU" in message
    assert "argument 2 is a cupy.ndarray on cuda:0" in message


def test_device_of_and_to_host_on_cpu():
    a = np.arange(3)
    assert device_of(a) == cnnx.device("cpu")
    assert to_host(a) is a


def test_devices_are_hashable_and_comparable():
    assert {cnnx.device("cpu"), cnnx.device("cpu")} == {cnnx.device("cpu")}
    assert cnnx.device("cpu") != "cpu"


@pytest.mark.gpu
def test_real_gpu_round_trip():
    dev = cnnx.device("cuda")
    a = dev.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert get_array_module(a) is dev.xp
    assert device_of(a) == dev
    np.testing.assert_array_equal(dev.to_host(a), np.arange(6).reshape(2, 3))
    back = cnnx.device("cpu").asarray(a)
    assert isinstance(back, np.ndarray)


def test_device_contexts_nest_and_are_per_thread(fake_probe):
    current = threading.local()
    fake_probe(_fake_cupy(device_count=2, current=current))
    zero, one = cnnx.device("cuda:0"), cnnx.device("cuda:1")
    with one:
        with one:  # the same shared Device object, entered twice (evaluate inside fit)
            with zero:
                assert current.id == 0
            assert current.id == 1
        assert current.id == 1
        seen = []
        thread = threading.Thread(target=lambda: seen.append(getattr(current, "id", 0)))
        thread.start()
        thread.join()
        assert seen == [0]
    assert current.id == 0
