"""What an experiment runs: configurations, seeds, grids over them, and named presets.

A :class:`RunConfig` is a name and everything about one training run except its seed
and device: a :class:`cnnx.runs.RunSpec` without those two (:meth:`RunConfig.spec`
adds them), validated by the same rules. An :class:`Experiment` is a list of
configurations and a list of seeds; it runs every configuration once per seed.
:func:`grid` builds the configurations of a Cartesian product (models × optimizers ×
learning rates × …), and :data:`PRESETS` holds the experiments of the research
reports by name.
"""

from __future__ import annotations

import itertools
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnx.errors import ConfigError
from cnnx.models import canonical_name
from cnnx.optim import OPTIMIZERS
from cnnx.runs import SOURCES, RunSpec, optimizer_hyperparameters
from cnnx.runs.spec import check_fields
from cnnx.runs.spec import plain as _plain


class _SourceOptions(Mapping[str, tuple[str, ...]]):
    """Dataset name -> the options it takes, read from the data-source registry."""

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return SOURCES[name].all_options

    def __iter__(self) -> Iterator[str]:
        return iter(SOURCES)

    def __len__(self) -> int:
        return len(SOURCES)


#: Datasets an experiment can train on, and the options each one takes.
DATASET_OPTIONS: Mapping[str, tuple[str, ...]] = _SourceOptions()

_RUN_CONFIG_KEYS = (
    "name", "model", "model_options", "optimizer", "hyperparameters", "dataset",
    "dataset_options", "epochs", "batch_size", "val_fraction",
)  # fmt: skip
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._=+-]+")


def _all_hyperparameters() -> set[str]:
    return set().union(*(optimizer_hyperparameters(name) for name in OPTIMIZERS))


@dataclass(frozen=True)
class RunConfig:
    """One configuration of an experiment: everything about a run but its seed.

    Attributes:
        name: label used in tables and file names (e.g. ``"S-Adam"``); unique in an
            experiment.
        model: registered model name or alias (``"simple"``, ``"toy_convnet"``).
        model_options: extra constructor arguments (``{"kernel_size": 3}``); the
            seed is added per run.
        optimizer: a key of ``cnnx.optim.OPTIMIZERS`` (``"sgd"``, ``"adam"``, …).
        hyperparameters: optimizer arguments (``{"lr": 0.01, "beta1": 0.7}``).
        dataset: ``"digits6x6"``, ``"patterns"`` or ``"mnist"``.
        dataset_options: ``digits6x6``: ``path`` (a workbook; default the bundled
            one). ``patterns``: arguments of ``make_patterns``. ``mnist``: ``root``
            (directory of the IDX files) and ``limit`` (use the first N training
            images).
        epochs: passes over the training set.
        batch_size: minibatch size; None is the full batch.
        val_fraction: stratified share held out for validation, in [0, 1); 0 means
            no validation.
    """

    name: str
    model: str = "simple_cnn"
    model_options: Mapping[str, Any] = field(default_factory=dict)
    optimizer: str = "adam"
    hyperparameters: Mapping[str, float] = field(default_factory=dict)
    dataset: str = "digits6x6"
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 300
    batch_size: int | None = None
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(
                f"configuration name must be a non-empty string, got {self.name!r}", field="name"
            )
        fraction = self.val_fraction
        if fraction is None:
            raise ConfigError(
                f"configuration {self.name!r}: val_fraction must be in [0, 1), got None",
                field="val_fraction",
            )
        fields = {key: getattr(self, key) for key in _RUN_CONFIG_KEYS if key != "name"}
        checked = check_fields(fields, f"configuration {self.name!r}")
        for key in fields:
            object.__setattr__(self, key, checked[key])

    def spec(self, seed: int, device: str = "cpu") -> RunSpec:
        """The run of this configuration with ``seed`` on ``device``."""
        fields = {key: getattr(self, key) for key in _RUN_CONFIG_KEYS if key != "name"}
        return RunSpec(seed=seed, device=device, **fields)

    @property
    def file_stem(self) -> str:
        """The name made safe for a file name (runs/<stem>__seed<k>.json)."""
        return _SAFE_NAME.sub("_", self.name.strip()).strip("._") or "config"

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain JSON-ready values (what a run file stores and resume compares)."""
        return {key: _plain(getattr(self, key)) for key in _RUN_CONFIG_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build a configuration from a dict.

        Besides the field names, optimizer hyperparameters may be given at the top
        level (``{"name": "a", "optimizer": "sgd", "lr": 0.1}``).

        Raises:
            ValueError: an unknown key, or a bad value (the message names it).
        """
        data = dict(data)
        hyper = dict(data.pop("hyperparameters", {}) or {})
        for key in sorted(_all_hyperparameters() & set(data)):
            hyper[key] = data.pop(key)
        unknown = sorted(set(data) - set(_RUN_CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"configuration {data.get('name', '?')!r}: unknown keys {unknown}; "
                f"expected {', '.join(_RUN_CONFIG_KEYS)} or optimizer hyperparameters"
            )
        if "name" not in data:
            raise ValueError("a configuration dict needs a 'name'")
        return cls(hyperparameters=hyper, **data)

    def describe_optimizer(self) -> str:
        """``"Adam(lr=0.01, beta1=0.7, beta2=0.99)"``: the optimizer as the tables show it."""
        cls = OPTIMIZERS[self.optimizer]
        hyper = ", ".join(f"{k}={_number(v)}" for k, v in _ordered(self.hyperparameters))
        return f"{cls.__name__}({hyper})"

    def describe_model(self) -> str:
        """``"toy_convnet(kernel_size=3)"`` or just the model name."""
        if not self.model_options:
            return self.model
        options = ", ".join(f"{k}={v}" for k, v in self.model_options.items())
        return f"{self.model}({options})"


def _ordered(hyper: Mapping[str, float]) -> list[tuple[str, float]]:
    order = ("lr", "momentum", "rho", "beta1", "beta2", "eps", "weight_decay")
    return sorted(hyper.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Experiment:
    """Configurations × seeds: every configuration is trained once per seed.

    Attributes:
        name: what the experiment is called (a preset's name, or ``"custom"``).
        configs: the configurations, in the order the tables list them.
        seeds: non-negative integer seeds; each seeds a run's split, weights and
            shuffling.
        description: one paragraph for the head of summary.md.
    """

    name: str
    configs: tuple[RunConfig, ...]
    seeds: tuple[int, ...] = tuple(range(10))
    description: str = ""

    def __post_init__(self) -> None:
        configs = tuple(
            c if isinstance(c, RunConfig) else RunConfig.from_dict(c) for c in self.configs
        )
        if not configs:
            raise ValueError("an experiment needs at least one configuration")
        object.__setattr__(self, "configs", configs)
        seen: dict[str, str] = {}
        for config in configs:
            stem = config.file_stem.lower()
            if stem in seen:
                raise ValueError(
                    f"configuration names {seen[stem]!r} and {config.name!r} are the same "
                    "as file names; give every configuration its own name"
                )
            seen[stem] = config.name
        seeds = tuple(self.seeds)
        if not seeds:
            raise ValueError("an experiment needs at least one seed")
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
                raise ValueError(f"seeds must be non-negative integers, got {seed!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must not repeat, got {list(seeds)}")
        object.__setattr__(self, "seeds", tuple(int(s) for s in seeds))

    def runs(self) -> list[tuple[RunConfig, int]]:
        """Every (configuration, seed) pair, configuration-major: the order of the tables."""
        return [(config, seed) for config in self.configs for seed in self.seeds]

    def replace(self, **changes: Any) -> Experiment:
        """A copy with ``seeds``/``name``/``description`` or per-config fields changed.

        Per-config fields (``epochs``, ``batch_size``, ``val_fraction``,
        ``dataset_options``) are applied to every configuration; ``dataset_options``
        entries are merged into each configuration's own.
        """
        per_config = {"epochs", "batch_size", "val_fraction", "dataset_options"}
        own = {k: v for k, v in changes.items() if k not in per_config}
        shared = {k: v for k, v in changes.items() if k in per_config}
        configs = self.configs
        if shared:
            updated = []
            for config in configs:
                data = config.to_dict()
                for key, value in shared.items():
                    if key == "dataset_options":
                        data[key] = {**data[key], **value}
                    else:
                        data[key] = value
                updated.append(RunConfig.from_dict(data))
            configs = tuple(updated)
        fields = {"name": self.name, "configs": configs, "seeds": self.seeds}
        fields["description"] = self.description
        fields.update(own)
        return Experiment(**fields)


def parse_seeds(text: str) -> tuple[int, ...]:
    """Parse ``"0-9"``, ``"0,2,5"`` or ``"0-4,10"`` into a tuple of seeds.

    Raises:
        ValueError: malformed text (the message quotes it).
    """
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise ValueError(
                f"--seeds {text!r}: expected non-negative integers and ranges like 0-9 or 0,2,5"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"--seeds {text!r}: range {part} runs backwards")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: a seed appears twice")
    return tuple(seeds)


def grid(
    models: Sequence[str],
    optimizers: Sequence[str],
    hyperparameters: Mapping[str, Sequence[float]],
    *,
    model_options: Mapping[str, Sequence[Any]] | None = None,
    epochs: Sequence[int] = (300,),
    batch_sizes: Sequence[int | None] = (None,),
    dataset: str = "digits6x6",
    dataset_options: Mapping[str, Any] | None = None,
    val_fraction: float = 0.2,
) -> list[RunConfig]:
    """The configurations of a Cartesian product, named after what varies.

    Each hyperparameter is combined only with the optimizers that take it (``rho``
    with rmsprop, ``beta1`` with adam, …); ``lr`` and ``weight_decay`` go with all.

    Args:
        models: model names or aliases.
        optimizers: optimizer names.
        hyperparameters: name -> values, e.g. ``{"lr": [0.01, 0.001], "beta1": [0.7]}``.
        model_options: name -> values of extra model arguments (``{"kernel_size": [3, 5]}``).
        epochs: values of the epoch count.
        batch_sizes: values of the batch size (None = full batch).
        dataset: dataset name; dataset_options: its options (fixed, not an axis).
        val_fraction: validation share of every configuration.

    Returns:
        One :class:`RunConfig` per combination, named like
        ``"simple_cnn adam lr=0.01"`` (model, optimizer, then each quantity that
        takes more than one value).

    Raises:
        ValueError: an empty axis, or a hyperparameter none of the optimizers takes.
    """
    model_options = dict(model_options or {})
    axes = {"models": models, "optimizers": optimizers, "epochs": epochs}
    axes["batch sizes"] = batch_sizes
    for label, values in {**axes, **hyperparameters, **model_options}.items():
        if len(values) == 0:
            raise ValueError(f"grid: no values given for {label}")
    for key in hyperparameters:
        owners = [o for o in optimizers if key in optimizer_hyperparameters(o)]
        if not owners:
            users = [o for o in OPTIMIZERS if key in optimizer_hyperparameters(o)]
            raise ValueError(
                f"grid: {key} applies to {', '.join(users) or 'no optimizer'}, "
                f"not to {', '.join(optimizers)}"
            )
    varying = {k for k, v in {**hyperparameters, **model_options}.items() if len(set(v)) > 1}
    configs: list[RunConfig] = []
    option_keys = list(model_options)
    for model, optimizer in itertools.product(models, optimizers):
        keys = [k for k in hyperparameters if k in optimizer_hyperparameters(optimizer)]
        value_lists = [hyperparameters[k] for k in keys] + [model_options[k] for k in option_keys]
        for values, n_epochs, batch in itertools.product(
            itertools.product(*value_lists), epochs, batch_sizes
        ):
            hyper = dict(zip(keys, values[: len(keys)], strict=True))
            options = dict(zip(option_keys, values[len(keys) :], strict=True))
            parts = [canonical_name(model), optimizer]
            parts += [f"{k}={_number(v)}" for k, v in _ordered(hyper) if k in varying or k == "lr"]
            parts += [f"{k}={v}" for k, v in options.items() if k in varying]
            if len(set(epochs)) > 1:
                parts.append(f"epochs={n_epochs}")
            if len(set(batch_sizes)) > 1:
                parts.append(f"batch={batch or 'full'}")
            configs.append(
                RunConfig(
                    name=" ".join(parts), model=model, model_options=options,
                    optimizer=optimizer, hyperparameters=hyper, dataset=dataset,
                    dataset_options=dict(dataset_options or {}), epochs=n_epochs,
                    batch_size=batch, val_fraction=val_fraction,
                )
            )  # fmt: skip
    return _dedupe(configs)


def _dedupe(configs: Iterable[RunConfig]) -> list[RunConfig]:
    """Drop repeated configurations (a model given twice under two aliases)."""
    seen: set[str] = set()
    unique = []
    for config in configs:
        key = repr(config.to_dict())
        if key not in seen:
            seen.add(key)
            unique.append(config)
    return unique


# --- presets ---------------------------------------------------------------------------

#: The 11×11 pattern set of the toy presets: 24 noisy (5 % of pixels flipped), shifted
#: (±1 pixel) copies of each pattern, split per seed into 14 training and 10 test samples
#: per class (42 and 30). Why so few, and why 42 = 5×8 + 2: docs/reproduction.md.
TOY_PATTERNS = {"n_per_class": 24, "noise": 0.05, "max_shift": 1}
TOY_VAL_FRACTION = 10 / 24
TOY_SEEDS = tuple(range(5))


def _report_table5() -> Experiment:
    adam = {"lr": 0.01, "beta1": 0.7, "beta2": 0.99}
    rmsprop = {"lr": 0.001, "rho": 0.9}
    configs = [
        RunConfig("S-SGD", "simple_cnn", optimizer="sgd", hyperparameters={"lr": 0.9}),
        RunConfig("S-RMSprop", "simple_cnn", optimizer="rmsprop", hyperparameters=rmsprop),
        RunConfig("S-Adam", "simple_cnn", optimizer="adam", hyperparameters=adam),
        RunConfig("E-RMSprop", "enhanced_cnn", optimizer="rmsprop", hyperparameters=rmsprop),
        RunConfig("E-Adam", "enhanced_cnn", optimizer="adam", hyperparameters=adam),
    ]
    return Experiment(
        "report-table5",
        tuple(configs),
        tuple(range(10)),
        "Report 000's five configurations on the bundled 6×6 digits: 8:2 stratified "
        "split, 300 full-batch epochs.",
    )


def _toy(name: str, pairs: Sequence[tuple[float, int]], description: str) -> Experiment:
    configs = [
        RunConfig(
            f"lr={lr:g} k={k}",
            "toy_convnet",
            model_options={"kernel_size": k},
            optimizer="sgd",
            hyperparameters={"lr": lr},
            dataset="patterns",
            dataset_options=TOY_PATTERNS,
            epochs=500,
            batch_size=8,
            val_fraction=TOY_VAL_FRACTION,
        )
        for lr, k in pairs
    ]
    return Experiment(name, tuple(configs), TOY_SEEDS, description)


def _toy_lr() -> Experiment:
    return _toy(
        "toy-lr",
        [(0.001, 5), (0.0001, 5), (0.0002, 5), (0.01, 5)],
        "Report 003's learning-rate sweep: ConvNet with 16 5×5 filters (weights std 0.001), "
        "plain SGD, minibatch 8, 500 epochs, on the 11×11 patterns (24 per class, noise "
        "0.05, shift ±1; 42 training and 30 test samples per seed).",
    )


def _toy_kernel() -> Experiment:
    return _toy(
        "toy-kernel",
        [(0.01, 3), (0.01, 5), (0.01, 7), (0.01, 9)],
        "Report 003's kernel-size sweep: ConvNet with 16 k×k filters (weights std 0.001), "
        "plain SGD lr 0.01, minibatch 8, 500 epochs, on the 11×11 patterns (24 per class, "
        "noise 0.05, shift ±1; 42 training and 30 test samples per seed).",
    )


PRESETS = {
    "report-table5": _report_table5,
    "toy-lr": _toy_lr,
    "toy-kernel": _toy_kernel,
}
"""Preset name -> function building its :class:`Experiment`."""


def preset(name: str) -> Experiment:
    """The experiment registered as preset ``name``.

    Raises:
        ValueError: no preset of that name (the message lists them).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]()
