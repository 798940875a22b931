"""Model constructors by name: ``cnnx.models.get("simple_cnn", seed=0)``."""

from cnnx.models.model import Model, summarize
from cnnx.models.registry import (
    ModelInfo,
    available,
    canonical_name,
    data_options,
    get,
    register,
)
from cnnx.models.zoo import (
    convnet,
    enhanced_cnn,
    lenet5,
    mlp,
    mnist_cnn,
    simple_cnn,
    toy_convnet,
)

__all__ = [
    "Model",
    "ModelInfo",
    "available",
    "canonical_name",
    "convnet",
    "data_options",
    "enhanced_cnn",
    "get",
    "lenet5",
    "mlp",
    "mnist_cnn",
    "register",
    "simple_cnn",
    "summarize",
    "toy_convnet",
]
