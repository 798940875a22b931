"""Device resolution and array-module lookup: the only place that knows about CuPy."""

from cnnx.backends.devices import (
    Device,
    device,
    device_of,
    get_array_module,
    gpu_status,
    ignore_float_errors,
    to_host,
)

__all__ = [
    "Device",
    "device",
    "device_of",
    "get_array_module",
    "gpu_status",
    "ignore_float_errors",
    "to_host",
]
