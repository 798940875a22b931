"""The one place where cnnx imports CuPy.

CuPy is imported lazily, the first time something asks whether a GPU is usable,
and any exception during the import or the probe is caught: a broken CUDA
install must produce a readable :class:`~cnnx.errors.DeviceError`, not a crash
at ``import cnnx``. The probe runs once per process and its result is cached,
because ``cupy.cuda.runtime.getDeviceCount`` can take seconds on a cold driver.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import ModuleType

INSTALL_HINT = (
    'install CuPy for your CUDA version with pip install "cnnx[cuda12]" '
    '(CUDA 12.x) or pip install "cnnx[cuda13]" (CUDA 13.x)'
)


@dataclass(frozen=True)
class GpuProbe:
    """What the CuPy probe found.

    Attributes:
        cupy: the imported ``cupy`` module, or None when it is not usable.
        device_count: number of CUDA devices CuPy can see (0 when unusable).
        reason: why no GPU is usable ("" when one is).
        names: one human-readable name per visible device.
    """

    cupy: ModuleType | None
    device_count: int
    reason: str
    names: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return self.cupy is not None and self.device_count > 0


_lock = threading.Lock()
_cached: GpuProbe | None = None


def _device_name(cupy: ModuleType, index: int) -> str:
    try:
        props = cupy.cuda.runtime.getDeviceProperties(index)
        name = props.get("name", b"")
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # a name is cosmetic; never fail the probe over it
        return "CUDA device"


def _run_probe() -> GpuProbe:
    try:
        import cupy
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "cupy":
            return GpuProbe(None, 0, f"CuPy is not installed; {INSTALL_HINT}")
        return GpuProbe(None, 0, f"CuPy failed to import ({exc}); reinstall it: {INSTALL_HINT}")
    except Exception as exc:
        return GpuProbe(
            None,
            0,
            f"CuPy is installed but failed to import ({type(exc).__name__}: {exc}); "
            f"this usually means a CuPy build that does not match the CUDA driver; {INSTALL_HINT}",
        )
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        return GpuProbe(
            None,
            0,
            f"CuPy could not talk to the CUDA driver ({type(exc).__name__}: {exc}); "
            "check that an NVIDIA driver is installed and `nvidia-smi` works",
        )
    if count <= 0:
        return GpuProbe(None, 0, "CuPy is installed but no NVIDIA GPU is visible")
    try:
        # A tiny kernel proves that compilation (NVRTC) and launches work, which
        # getDeviceCount alone does not.
        with cupy.cuda.Device(0):
            if int((cupy.arange(4, dtype=cupy.float32) * 2).sum()) != 12:
                raise RuntimeError("a test kernel computed a wrong result")
    except Exception as exc:
        return GpuProbe(
            None,
            0,
            f"a GPU is visible but CuPy cannot run on it ({type(exc).__name__}: {exc}); "
            f"the CuPy package may not match the installed CUDA; {INSTALL_HINT}",
        )
    names = tuple(_device_name(cupy, i) for i in range(count))
    return GpuProbe(cupy, count, "", names)


def probe() -> GpuProbe:
    """Return the cached result of probing CuPy and the GPUs (probing on first call)."""
    global _cached
    if _cached is None:
        with _lock:
            if _cached is None:
                _cached = _run_probe()
    return _cached


def loaded_cupy() -> ModuleType | None:
    """The cupy module if it has already been imported by someone, else None.

    Used to recognise CuPy arrays without importing CuPy (and paying for the
    probe) when the user never asked for a GPU.
    """
    import sys

    return sys.modules.get("cupy")
