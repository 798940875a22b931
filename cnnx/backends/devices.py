"""Devices: where arrays live and which array module (``xp``) computes on them.

A :class:`Device` is made at the edge of a program (``cnnx.device("cuda")`` or
a CLI flag) and used to move data. Inside the library, functions never ask for
a "current device": they take ``xp`` from their input arrays with
:func:`get_array_module`, so the same code runs wherever its data lives.
"""

from __future__ import annotations

import re
import threading
from types import ModuleType
from typing import Any

import numpy as np

from cnnx.backends import _cupy
from cnnx.errors import DeviceError

_SPEC_RE = re.compile(r"^(cpu|cuda|auto)(?::(\d+))?$")

# CuPy device contexts entered through ``with device:``, innermost last, per thread.
# One Device object is shared by everyone who resolves the same spec, so the
# contexts cannot live on it: nested ``with dev:`` blocks (evaluate inside fit's
# callback) and threads each need their own.
_entered = threading.local()


def _context_stack() -> list[Any]:
    stack = getattr(_entered, "stack", None)
    if stack is None:
        stack = _entered.stack = []
    return stack


class Device:
    """A place where arrays live: the host CPU (NumPy) or one CUDA GPU (CuPy).

    Attributes:
        kind: ``"cpu"`` or ``"cuda"``.
        index: GPU ordinal for ``"cuda"``; None for the CPU.
        xp: the array module, ``numpy`` or ``cupy``.
    """

    __slots__ = ("_name", "index", "kind", "xp")

    def __init__(self, kind: str, index: int | None, xp: ModuleType, name: str = ""):
        self.kind = kind
        self.index = index
        self.xp = xp
        self._name = name

    @property
    def is_gpu(self) -> bool:
        return self.kind == "cuda"

    @property
    def spec(self) -> str:
        """The string that names this device: ``"cpu"`` or ``"cuda:N"``."""
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Return ``a`` (host or device array, or nested lists) as an array on this device.

        No copy is made when ``a`` already lives here with the requested dtype.
        """
        if self.kind == "cpu":
            cp = _cupy.loaded_cupy()
            if cp is not None and isinstance(a, cp.ndarray):
                a = cp.asnumpy(a)
            return np.asarray(a, dtype=dtype)
        with self.xp.cuda.Device(self.index):
            return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a: Any) -> np.ndarray:
        """Return ``a`` as a ``numpy.ndarray`` (copied off the GPU when needed)."""
        return to_host(a)

    def synchronize(self) -> None:
        """Wait until all work queued on this device has finished (no-op on the CPU)."""
        if self.kind == "cuda":
            self.xp.cuda.Device(self.index).synchronize()

    def __enter__(self) -> Device:
        """Make this GPU CuPy's current device, so arrays created inside land on it.

        Re-entrant and thread-safe: blocks may nest (also for the same Device) and
        several threads may use one Device at once; each exit restores what its
        own enter replaced. A no-op on the CPU.
        """
        if self.kind == "cuda":
            ctx = self.xp.cuda.Device(self.index)
            ctx.__enter__()
            _context_stack().append(ctx)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.kind == "cuda":
            _context_stack().pop().__exit__(*exc)

    def mask(self, keep: np.ndarray) -> Any:
        """Move a host boolean array to this device as a uint8 0/1 array of the same shape.

        On a GPU only the packed bits cross the bus (1/8 byte per element) and are
        expanded on the device; :func:`mask_plain` is the straightforward version.
        """
        if self.kind == "cpu":
            return keep.view(np.uint8)
        with self:
            bits = self.xp.asarray(np.packbits(keep, axis=None))
            return self.xp.unpackbits(bits)[: keep.size].reshape(keep.shape)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and (self.kind, self.index) == (other.kind, other.index)

    def __hash__(self) -> int:
        return hash((self.kind, self.index))

    def __str__(self) -> str:
        if self.kind == "cpu":
            return "cpu"
        return f"cuda:{self.index} ({self._name})" if self._name else f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"Device('{self.spec}')"


_CPU = Device("cpu", None, np)


def mask_plain(dev: Device, keep: np.ndarray) -> Any:
    """What :meth:`Device.mask` computes, the plain way: one uint8 byte per element moved."""
    return dev.asarray(keep.astype(np.uint8))


def gpu_status() -> tuple[int, str, tuple[str, ...]]:
    """Return ``(count, reason, names)``: usable GPUs, why none (or ""), and their names."""
    found = _cupy.probe()
    return found.device_count, found.reason, found.names


def device(spec: str | Device = "cpu") -> Device:
    """Resolve a device specification.

    Args:
        spec: ``"cpu"``; ``"cuda"`` (GPU 0); ``"cuda:N"``; ``"auto"`` (GPU 0 if one
            is usable, else the CPU); or a :class:`Device`, returned unchanged.

    Returns:
        The :class:`Device`.

    Raises:
        DeviceError: a GPU was asked for and none is usable (the message says why
            and how to fix it), or the index is out of range. cnnx never falls back
            to the CPU silently.
        ValueError: ``spec`` is not one of the forms above.
    """
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"device spec must be a string such as 'cpu' or 'cuda:0', got {spec!r}")
    match = _SPEC_RE.match(spec.strip().lower())
    if match is None:
        raise ValueError(f"unknown device {spec!r}: expected 'cpu', 'cuda', 'cuda:N' or 'auto'")
    kind, index_text = match.group(1), match.group(2)
    if kind == "cpu":
        if index_text not in (None, "0"):
            raise ValueError(f"unknown device {spec!r}: the CPU has no index other than 0")
        return _CPU
    if kind == "auto":
        if index_text is not None:
            raise ValueError(f"unknown device {spec!r}: 'auto' takes no index")
        found = _cupy.probe()
        if not found.usable:
            return _CPU
        return _cuda_device(found, 0)
    index = int(index_text) if index_text is not None else 0
    found = _cupy.probe()
    if not found.usable:
        raise DeviceError(f"device {spec!r} is not usable: {found.reason}")
    if index >= found.device_count:
        listed = ", ".join(f"cuda:{i} ({n})" for i, n in enumerate(found.names))
        raise DeviceError(
            f"device {spec!r} does not exist: {found.device_count} GPU(s) visible: {listed}"
        )
    return _cuda_device(found, index)


_cuda_cache: dict[int, Device] = {}


def _cuda_device(found: _cupy.GpuProbe, index: int) -> Device:
    if index not in _cuda_cache:
        _cuda_cache[index] = Device("cuda", index, found.cupy, found.names[index])
    return _cuda_cache[index]


def _module_of(a: Any) -> ModuleType | None:
    if type(a) is np.ndarray or isinstance(a, np.ndarray | np.generic):
        return np
    cp = _cupy.loaded_cupy()
    if cp is not None and isinstance(a, cp.ndarray):
        return cp
    return None


def _where(a: Any) -> str:
    if isinstance(a, np.ndarray | np.generic):
        return f"a {type(a).__module__}.{type(a).__name__} on the CPU"
    return f"a cupy.ndarray on cuda:{a.device.id}"


def get_array_module(*arrays: Any) -> ModuleType:
    """Return the array module (``numpy`` or ``cupy``) of the given arrays.

    Arguments that are not arrays (Python scalars, None) are ignored; with no
    arrays at all the answer is ``numpy``.

    Raises:
        TypeError: NumPy and CuPy arrays are mixed; the message says which
            argument lives where.
    """
    if len(arrays) == 1 and type(arrays[0]) is np.ndarray:
        return np  # the common case, on every layer call: skip the general loop
    first: tuple[int, ModuleType, Any] | None = None
    for i, a in enumerate(arrays):
        mod = _module_of(a)
        if mod is None:
            continue
        if first is None:
            first = (i, mod, a)
        elif mod is not first[1]:
            raise TypeError(
                f"arrays live on different devices: argument {first[0]} is {_where(first[2])}, "
                f"argument {i} is {_where(a)}; move them with Device.asarray() or Module.to()"
            )
    return np if first is None else first[1]


def device_of(a: Any) -> Device:
    """Return the :class:`Device` an array lives on (the CPU for anything not on a GPU)."""
    if _module_of(a) is np or _module_of(a) is None:
        return _CPU
    index = int(a.device.id)
    found = _cupy.probe()
    if found.usable and index < found.device_count:
        return _cuda_device(found, index)
    return Device("cuda", index, _cupy.loaded_cupy())


def to_host(a: Any) -> np.ndarray:
    """Return ``a`` as a ``numpy.ndarray``, copying it off the GPU if it lives there."""
    cp = _cupy.loaded_cupy()
    if cp is not None and isinstance(a, cp.ndarray):
        return cp.asnumpy(a)
    return np.asarray(a)


def ignore_float_errors() -> Any:
    """Context manager that silences NumPy's overflow/invalid warnings.

    Training loops check the loss themselves and raise TrainingDiverged with the
    epoch, so NumPy's RuntimeWarnings would only add noise (CuPy never warns).
    """
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")
