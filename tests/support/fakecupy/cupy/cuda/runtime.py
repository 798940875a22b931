"""Stand-in for ``cupy.cuda.runtime``: device count and properties of the fake GPUs."""

from __future__ import annotations

import cupy_stand_in as _state


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount() -> int:
    return _state.device_count()


def getDevice() -> int:
    return _state.current_device()


def setDevice(device: int) -> None:
    _state.set_current_device(int(device))


def getDeviceProperties(device: int) -> dict:
    if not 0 <= device < _state.device_count():
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return {
        "name": f"cnnx stand-in GPU {device} (NumPy)".encode(),
        "totalGlobalMem": 141 << 30,
        "major": 9,
        "minor": 0,
        "multiProcessorCount": 132,
    }


def runtimeGetVersion() -> int:
    return 12080


def driverGetVersion() -> int:
    return 12080


def __getattr__(name: str):
    if name in _state.real_names("cupy.cuda.runtime"):
        raise AttributeError(
            f"stand-in: cupy.cuda.runtime.{name} exists in CuPy but is not implemented"
        )
    raise AttributeError(f"module 'cupy.cuda.runtime' has no attribute {name!r}")
