"""State and test hooks of the NumPy-backed CuPy stand-in (``tests/support/fakecupy/cupy``).

Kept outside the ``cupy`` package so that ``cupy`` itself exposes only names real
CuPy has. Tests import this module to read the device→host synchronisation
counter and the number of fake GPUs.

Environment:
    CNNX_FAKE_GPUS: number of fake GPUs (1 or 2; default 1).
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path

_NAMES = json.loads((Path(__file__).resolve().parent / "cupy_names.json").read_text())

#: CuPy version the name lists were generated from.
CUPY_VERSION: str = _NAMES["cupy_version"]


def real_names(namespace: str) -> frozenset[str]:
    """Names real CuPy gives for ``dir(namespace)``, e.g. ``"cupy"`` or ``"cupy.ndarray"``."""
    return frozenset(_NAMES[namespace])


def device_count() -> int:
    text = os.environ.get("CNNX_FAKE_GPUS", "1")
    if text not in ("1", "2"):
        raise RuntimeError(f"CNNX_FAKE_GPUS must be 1 or 2, got {text!r}")
    return int(text)


_lock = threading.Lock()
_syncs = 0
_uploads = 0
_thread = threading.local()


def current_device() -> int:
    """The calling thread's current fake GPU (CUDA's current device is per host thread)."""
    return getattr(_thread, "device", 0)


def set_current_device(index: int) -> None:
    if not 0 <= index < device_count():
        raise RuntimeError(
            f"cudaErrorInvalidDevice: invalid device ordinal {index} ({device_count()} fake GPU(s))"
        )
    _thread.device = index


def count_sync() -> None:
    """Record one device→host synchronisation (float(), .item(), asnumpy, ...)."""
    global _syncs
    with _lock:
        _syncs += 1


def count_upload() -> None:
    """Record one host→device copy (cupy.asarray of host data)."""
    global _uploads
    with _lock:
        _uploads += 1


def syncs() -> int:
    """Device→host synchronisations so far in this process."""
    return _syncs


def uploads() -> int:
    """Host→device copies so far in this process."""
    return _uploads


@contextmanager
def counting():
    """Yield a dict whose ``syncs``/``uploads`` are filled with the counts made inside."""
    result = {"syncs": 0, "uploads": 0}
    s0, u0 = _syncs, _uploads
    try:
        yield result
    finally:
        result["syncs"] = _syncs - s0
        result["uploads"] = _uploads - u0
