"""cnnx: a small convolutional-network library written once against NumPy and CuPy.

import cnnx
dev = cnnx.device("cpu")            # or "cuda", "cuda:1", "auto"
model = cnnx.nn.Sequential(cnnx.nn.Conv2D(1, 8, 3, rng=0), cnnx.nn.ReLU(), ...)
opt = cnnx.optim.Adam(model.named_parameters(), lr=1e-3)
"""

from cnnx import datasets, experiment, inspect, models, nn, optim, runs
from cnnx._version import __version__
from cnnx.backends import Device, device, get_array_module
from cnnx.errors import (
    CheckpointError,
    CnnxError,
    DatasetError,
    DeviceError,
    OutputExistsError,
    TrainingDiverged,
)
from cnnx.gradcheck import gradcheck
from cnnx.train import EpochRecord, Evaluation, History, evaluate, fit, predict_proba

__all__ = [
    "CheckpointError",
    "CnnxError",
    "DatasetError",
    "Device",
    "DeviceError",
    "EpochRecord",
    "Evaluation",
    "History",
    "OutputExistsError",
    "TrainingDiverged",
    "__version__",
    "datasets",
    "device",
    "evaluate",
    "experiment",
    "fit",
    "get_array_module",
    "gradcheck",
    "inspect",
    "models",
    "nn",
    "optim",
    "predict_proba",
    "runs",
]
