"""cnnx: a small convolutional-network library written once against NumPy and CuPy."""

from cnnx._version import __version__
from cnnx.errors import (
    CheckpointError,
    CnnxError,
    DatasetError,
    DeviceError,
    TrainingDiverged,
)

__all__ = [
    "CheckpointError",
    "CnnxError",
    "DatasetError",
    "DeviceError",
    "TrainingDiverged",
    "__version__",
]
