"""Stand-in for ``cupy.cuda``: fake GPUs and CuPy's current-device context manager."""

from __future__ import annotations

import cupy_stand_in as _state

from cupy.cuda import runtime


class Device:
    """``cupy.cuda.Device(i)``: with CuPy's semantics, each instance keeps its own stack.

    ``with Device(i):`` makes GPU ``i`` the calling thread's current device and
    restores the previous one on exit; exiting an instance more times than it
    was entered pops an empty list (IndexError), as in CuPy.
    """

    def __init__(self, device=None):
        if device is None:
            device = _state.current_device()
        if isinstance(device, bool) or not isinstance(device, int):
            device = int(device)
        self.id = device
        self._device_stack: list[int] = []

    def __enter__(self):
        previous = _state.current_device()
        self._device_stack.append(previous)
        if self.id != previous:
            _state.set_current_device(self.id)
        return self

    def __exit__(self, *exc):
        _state.set_current_device(self._device_stack.pop())

    def use(self):
        _state.set_current_device(self.id)

    def synchronize(self):
        if not 0 <= self.id < _state.device_count():
            raise runtime.CUDARuntimeError(f"cudaErrorInvalidDevice: {self.id}")

    @property
    def compute_capability(self) -> str:
        return "90"

    @property
    def mem_info(self) -> tuple[int, int]:
        return (140 << 30, 141 << 30)

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def __int__(self):
        return self.id

    def __getattr__(self, name):
        if name in _state.real_names("cupy.cuda.Device"):
            raise AttributeError(f"stand-in: cupy.cuda.Device.{name} is not implemented")
        raise AttributeError(f"'cupy.cuda.device.Device' object has no attribute {name!r}")


def get_device_id() -> int:
    return _state.current_device()


def __getattr__(name: str):
    if name in _state.real_names("cupy.cuda"):
        raise AttributeError(f"stand-in: cupy.cuda.{name} exists in CuPy but is not implemented")
    raise AttributeError(f"module 'cupy.cuda' has no attribute {name!r}")
