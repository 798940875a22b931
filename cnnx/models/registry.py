"""A registry of model constructors, so the CLI and ``cnnx.models.get`` build models by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnnx.models.model import Model


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one constructor."""

    name: str
    build: Callable[..., Model]
    description: str
    aliases: tuple[str, ...] = ()
    sized_from_data: bool = False


_MODELS: dict[str, ModelInfo] = {}
_ALIASES: dict[str, str] = {}


def register(
    name: str, description: str, aliases: tuple[str, ...] = (), sized_from_data: bool = False
):
    """Decorator: register a constructor ``f(**kwargs) -> Model`` under ``name``.

    ``sized_from_data``: the constructor takes ``channels``, ``image_size`` and
    ``num_classes``, which :func:`data_options` fills in from the data.
    """

    def decorate(build: Callable[..., Model]) -> Callable[..., Model]:
        _MODELS[name] = ModelInfo(name, build, description, aliases, sized_from_data)
        for alias in aliases:
            _ALIASES[alias] = name
        return build

    return decorate


def canonical_name(name: str) -> str:
    """Resolve an alias (``"simple"``) to its registered name (``"simple_cnn"``)."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _MODELS:
        known = ", ".join(sorted(_MODELS))
        raise ValueError(f"unknown model {name!r}; available: {known}")
    return key


def get(name: str, **kwargs: Any) -> Model:
    """Build the model registered as ``name`` (or an alias) with constructor ``kwargs``."""
    return _MODELS[canonical_name(name)].build(**kwargs)


def available() -> list[ModelInfo]:
    """Registered models, sorted by name."""
    return [_MODELS[k] for k in sorted(_MODELS)]


def data_options(name: str, input_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """The constructor options that size model ``name`` to the data.

    Args:
        name: a registered name or alias.
        input_shape: one sample's shape ``(C, H, W)``.
        num_classes: number of classes in the data.

    Returns:
        ``{"channels": C, "image_size": [H, W], "num_classes": k}`` for a model
        registered with ``sized_from_data=True`` (such as ``convnet``), else ``{}``:
        the other models have a fixed input shape.
    """
    if not _MODELS[canonical_name(name)].sized_from_data:
        return {}
    channels, height, width = (int(s) for s in input_shape)
    return {"channels": channels, "image_size": [height, width], "num_classes": int(num_classes)}
