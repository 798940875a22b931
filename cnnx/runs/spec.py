""":class:`RunSpec`: the whole definition of one training run, validated, JSON-ready."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnx.errors import ConfigError
from cnnx.runs.data import SOURCES, get_source, resolve_path

#: Keys a run directory's config.json holds besides the spec's fields (written by
#: :func:`cnnx.runs.execute`); :meth:`RunSpec.from_dict` reads past them.
BOOKKEEPING_KEYS = ("train_samples", "val_samples", "samples_read", "cnnx_version")

#: Keys of the configuration ``cnnx train`` wrote before runs had a spec.
_LEGACY_DATA_KEYS = {"data": "path", "data_dir": "root", "train_limit": "limit"}

HYPERPARAMETER_ORDER = ("lr", "momentum", "rho", "beta1", "beta2", "eps", "weight_decay")


class _Invalid(Exception):
    """A field's problem, before the caller says where the field came from."""

    def __init__(self, field_name: str, problem: str):
        super().__init__(problem)
        self.field = field_name
        self.problem = problem


@functools.cache
def optimizer_hyperparameters(optimizer: str) -> tuple[str, ...]:
    """The keyword arguments of an optimizer's constructor: ``("lr", "rho", "eps", …)``.

    Read from the class's signature, so it cannot drift from ``cnnx.optim``.

    Raises:
        ConfigError: no optimizer of that name.
    """
    from cnnx.optim import OPTIMIZERS

    if optimizer not in OPTIMIZERS:
        raise ConfigError(
            f"unknown optimizer {optimizer!r}; available: {', '.join(sorted(OPTIMIZERS))}",
            field="optimizer",
        )
    signature = inspect.signature(OPTIMIZERS[optimizer].__init__)
    return tuple(name for name in signature.parameters if name not in ("self", "params"))


def plain(value: Any) -> Any:
    """A JSON-ready copy: numbers as Python int/float, mappings with sorted string keys."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _mapping(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid(name, f"{name} must be an object (a mapping), got {_describe(value)}")
    for key in value:
        if not isinstance(key, str):
            raise _Invalid(name, f"{name} must have string keys, got {_describe(key)}")
    return dict(value)


def _count(name: str, value: Any, minimum: int = 1) -> int:
    if not _is_int(value) or value < minimum:
        kind = "a positive integer" if minimum == 1 else "a non-negative integer"
        raise _Invalid(name, f"{name} must be {kind}, got {_describe(value)}")
    return int(value)


def _validate(fields: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise every field of a spec; raises :class:`_Invalid` on the first bad one."""
    from cnnx.models import canonical_name

    out = dict(fields)
    dataset = fields["dataset"]
    if not isinstance(dataset, str) or dataset not in SOURCES:
        raise _Invalid(
            "dataset",
            f"unknown dataset {_describe(dataset)}; available: {', '.join(sorted(SOURCES))}",
        )
    source = get_source(dataset)
    options = _mapping("dataset_options", fields["dataset_options"])
    for key, value in options.items():
        if key not in source.all_options:
            raise _Invalid(
                f"dataset_options.{key}",
                f"dataset {dataset} takes no option {key!r} "
                f"(it takes {', '.join(source.all_options)})",
            )
        if key in source.path_options and value is not None:
            if not isinstance(value, str) or not value:
                raise _Invalid(
                    f"dataset_options.{key}",
                    f"dataset_options.{key} must be a path (a string), got {_describe(value)}",
                )
            options[key] = resolve_path(value)
        if key == "limit" and value is not None:
            options[key] = _count("dataset_options.limit", value)
    out["dataset_options"] = plain(options)

    if not isinstance(fields["model"], str):
        raise _Invalid("model", f"model must be a model name, got {_describe(fields['model'])}")
    try:
        out["model"] = canonical_name(fields["model"])
    except ValueError as exc:
        raise _Invalid("model", str(exc)) from None
    model_options = _mapping("model_options", fields["model_options"])
    if "seed" in model_options:
        raise _Invalid("model_options.seed", "the model's seed is the run's seed; drop 'seed'")
    out["model_options"] = plain(model_options)

    optimizer = fields["optimizer"]
    if not isinstance(optimizer, str):
        raise _Invalid("optimizer", f"optimizer must be a name, got {_describe(optimizer)}")
    try:
        allowed = optimizer_hyperparameters(optimizer)
    except ConfigError as exc:
        raise _Invalid("optimizer", str(exc)) from None
    hyper = _mapping("hyperparameters", fields["hyperparameters"])
    for key, value in hyper.items():
        if key not in allowed:
            raise _Invalid(
                f"hyperparameters.{key}",
                f"{optimizer} takes no hyperparameter {key!r} (it takes {', '.join(allowed)})",
            )
        if not _is_real(value):
            raise _Invalid(
                f"hyperparameters.{key}",
                f"hyperparameter {key} must be a number, got {_describe(value)}",
            )
        if not math.isfinite(value):
            raise _Invalid(
                f"hyperparameters.{key}", f"hyperparameter {key} must be finite, got {value!r}"
            )
    if "lr" not in hyper:
        raise _Invalid("hyperparameters.lr", "hyperparameters need a learning rate 'lr'")
    if not hyper["lr"] > 0:
        raise _Invalid("hyperparameters.lr", f"lr must be > 0, got {hyper['lr']!r}")
    out["hyperparameters"] = plain(hyper)

    out["epochs"] = _count("epochs", fields["epochs"])
    if fields["batch_size"] is not None:
        out["batch_size"] = _count("batch_size", fields["batch_size"])
    fraction = fields["val_fraction"]
    if fraction is not None:
        if not _is_real(fraction) or not (math.isfinite(fraction) and 0 <= fraction < 1):
            raise _Invalid(
                "val_fraction", f"val_fraction must be in [0, 1) or null, got {_describe(fraction)}"
            )
        out["val_fraction"] = float(fraction)
    out["seed"] = _count("seed", fields["seed"], minimum=0)
    if not isinstance(fields["device"], str) or not fields["device"].strip():
        raise _Invalid(
            "device", f"device must be a string like 'cpu', got {_describe(fields['device'])}"
        )
    return out


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """The whole definition of one training run.

    The seed draws the stratified split, the initial weights and the minibatch order;
    nothing else is random, so a spec reproduces its run bit for bit on the CPU.

    Attributes:
        dataset: a data source name (``"digits6x6"``, ``"mnist"``, ``"patterns"``, …).
        dataset_options: the source's options (``{"path": "/abs/file.xlsx"}``,
            ``{"root": "/abs/dir", "limit": 8000}``); paths are stored absolute and resolved.
        model: canonical registry name; model_options: extra constructor arguments.
        optimizer: a key of ``cnnx.optim.OPTIMIZERS``; hyperparameters: its arguments
            (``"lr"`` always).
        epochs: passes over the training set; batch_size: None = full batch.
        val_fraction: stratified validation share in [0, 1); None = the dataset's rule
            (0.2; MNIST validates on its test split).
        seed: non-negative integer; device: ``"cpu"``, ``"cuda:0"``, …

    Raises:
        ConfigError: a field is malformed (the message names it).
    """

    dataset: str
    model: str
    optimizer: str
    hyperparameters: Mapping[str, float]
    epochs: int
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    model_options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    val_fraction: float | None = None
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        try:
            checked = _validate({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        except _Invalid as exc:
            raise ConfigError(
                f"run spec: {exc.problem}", field=exc.field, detail=exc.problem
            ) from None
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def __hash__(self) -> int:  # the mappings are dicts; hash their canonical JSON
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-ready values, in declaration order."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Any, source: str = "run spec") -> RunSpec:
        """Validate ``data`` (a parsed JSON object) and build the spec.

        Bookkeeping keys a run directory adds (``train_samples``, …) are skipped; the
        configuration of older ``cnnx train`` runs (``data``, ``data_dir``,
        ``train_limit``) is read as dataset options.

        Raises:
            ConfigError: a one-line message naming ``source`` and the field.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{source}: expected a JSON object with the run's fields, got {type(data).__name__}"
            )
        fields = {k: v for k, v in data.items() if k not in BOOKKEEPING_KEYS}
        legacy = [k for k in _LEGACY_DATA_KEYS if k in fields]
        if legacy and "dataset_options" not in fields:
            options = {}
            for key in legacy:
                value = fields.pop(key)
                if value is not None:
                    options[_LEGACY_DATA_KEYS[key]] = value
            fields["dataset_options"] = options
        names = cls.field_names()
        unknown = sorted(set(fields) - set(names))
        if unknown:
            raise ConfigError(
                f"{source}: unknown field {unknown[0]!r}; a run spec has {', '.join(names)}",
                field=unknown[0],
            )
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]  # fmt: skip
        missing = [name for name in required if name not in fields]
        if missing:
            raise ConfigError(f"{source}: missing field {missing[0]!r}", field=missing[0])
        try:
            checked = _validate({**_field_defaults(cls), **fields})
        except _Invalid as exc:
            raise ConfigError(
                f"{source}: {exc.problem}", field=exc.field, detail=exc.problem
            ) from None
        return cls(**checked)

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def describe_optimizer(self) -> str:
        """``"Adam(lr=0.01, beta1=0.7, beta2=0.99)"``."""
        from cnnx.optim import OPTIMIZERS

        ordered = sorted(
            self.hyperparameters.items(),
            key=lambda kv: (
                HYPERPARAMETER_ORDER.index(kv[0]) if kv[0] in HYPERPARAMETER_ORDER else 99
            ),
        )
        text = ", ".join(f"{k}={v:g}" for k, v in ordered)
        return f"{OPTIMIZERS[self.optimizer].__name__}({text})"


def _field_defaults(cls: type) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def check_fields(fields: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate spec fields (all of them), naming ``where`` in the error; returns them normalised.

    Used by the experiment grid's configurations, which are specs without seed and device.
    """
    try:
        return _validate({**_field_defaults(RunSpec), **fields})
    except _Invalid as exc:
        raise ConfigError(f"{where}: {exc.problem}", field=exc.field, detail=exc.problem) from None


def defaults(dataset: str) -> RunSpec:
    """The default run of ``dataset``.

    digits6x6: simple_cnn + Adam(0.01, beta1 0.7, beta2 0.99), 300 full-batch epochs
    (report 000's best configuration); mnist: mnist_cnn + Adam(0.001), 3 epochs, batch
    64; patterns: toy_convnet + SGD(0.01), 500 epochs, batch 8. Seed 0, CPU, the
    dataset's validation rule.

    Raises:
        ConfigError: unknown dataset.
    """
    source = get_source(dataset)
    return RunSpec(dataset=dataset, **{k: plain(v) for k, v in source.defaults.items()})
