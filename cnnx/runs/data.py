"""Data sources of a run, and :func:`load_data`, the one place a run's data is read and split.

A data source is registered by name (``"digits6x6"``, ``"mnist"``, ``"patterns"``; the
own-data work adds its own) with the options it takes and a loader
``load(options, seed) -> SourceData``. :func:`load_data` then applies what every source
shares: ``limit`` (the first N samples), and the validation rule (a stratified
``val_fraction`` split drawn with the run's seed, or the source's own test split).
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnx.errors import ConfigError

if TYPE_CHECKING:
    from cnnx.runs.spec import RunSpec

Arrays = tuple[np.ndarray, np.ndarray]

#: Every source accepts ``limit``: use only the first N samples (before the split).
COMMON_OPTIONS = ("limit",)


@dataclass(frozen=True)
class SourceData:
    """What a source's loader returns: all of its samples, before any split.

    Attributes:
        X: ``(N, C, H, W) float32``; y: ``(N,) int64``.
        description: e.g. ``"the bundled 6×6 digits"`` (the count is added later).
        class_names: display name of each class index.
        unit: what one sample is called in messages (``"samples"``, ``"images"``).
        preprocessing: what must be applied to new inputs before the model sees them
            (stored with the run; empty when nothing is). ``"normalize": True`` asks
            :func:`load_data` to fit per-channel normalisation on the training split.
        summary: a few lines on the data (samples per class, size, ...), or "".
        test: a split the data came with (an image folder's ``test/``), used for
            validation when the spec's ``val_fraction`` is None; or None.
    """

    X: np.ndarray
    y: np.ndarray
    description: str
    class_names: list[str]
    unit: str = "samples"
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    test: Arrays | None = None


@dataclass(frozen=True)
class DataSource:
    """A named way to get a run's data.

    Attributes:
        name: the ``dataset`` value of a run spec.
        load: ``load(options, seed) -> SourceData``; ``options`` are the spec's
            ``dataset_options`` (paths already absolute), ``seed`` the run's seed.
        options: the option names it takes (``limit`` is added for every source).
        path_options: those that are file or directory paths; stored absolute and
            resolved.
        load_test: ``load_test(options) -> (X, y)`` of a separate test split, used for
            validation when the spec's ``val_fraction`` is None (MNIST); None when the
            source has none.
        default_val_fraction: the validation share when ``val_fraction`` is None and
            there is no test split.
        defaults: ``runs.defaults(name)``'s fields: model, optimizer, hyperparameters,
            epochs, batch_size.
        seeded: whether ``load`` uses the seed (then its result is cached per seed;
            otherwise once for all seeds of a process).
    """

    name: str
    load: Callable[[Mapping[str, Any], int], SourceData]
    options: tuple[str, ...] = ()
    path_options: tuple[str, ...] = ()
    load_test: Callable[[Mapping[str, Any]], Arrays] | None = None
    default_val_fraction: float = 0.2
    defaults: Mapping[str, Any] = field(default_factory=dict)
    seeded: bool = False

    @property
    def all_options(self) -> tuple[str, ...]:
        return tuple(self.options) + tuple(o for o in COMMON_OPTIONS if o not in self.options)


SOURCES: dict[str, DataSource] = {}


def register_source(source: DataSource) -> DataSource:
    """Make ``source`` usable as a run's ``dataset`` (replacing one of the same name)."""
    SOURCES[source.name] = source
    return source


def get_source(name: str) -> DataSource:
    """The source registered as ``name``.

    Raises:
        ConfigError: no such source (the message lists them).
    """
    if name not in SOURCES:
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(sorted(SOURCES))}")
    return SOURCES[name]


@dataclass
class RunData:
    """A run's arrays, split for training and validation.

    Attributes:
        train: ``(X, y)``: X ``(N, C, H, W) float32``, y ``(N,) int64``.
        val: the validation pair, or None (``val_fraction`` 0).
        val_name: ``"val"`` for a split of the data, ``"test"`` for a source's test split.
        description: e.g. ``"the bundled 6×6 digits (96 samples)"``.
        class_names: display name of each class index.
        preprocessing: what evaluate/predict must apply to new inputs (empty: nothing).
        samples_read: how many samples the source delivered (before ``limit``).
        summary: the source's summary of the data (own files), or "".
    """

    train: Arrays
    val: Arrays | None
    val_name: str
    description: str
    class_names: list[str]
    preprocessing: dict[str, Any] = field(default_factory=dict)
    samples_read: int = 0
    summary: str = ""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train[0].shape[1:])


def _stamp(source: DataSource, options: Mapping[str, Any]) -> tuple[Any, ...]:
    """Size and modification time of the files named by path options (cache key)."""
    stamp = []
    for name in source.path_options:
        value = options.get(name)
        try:
            info = os.stat(value) if value is not None else None
        except OSError:
            info = None
        stamp.append(None if info is None else (info.st_size, info.st_mtime_ns))
    return tuple(stamp)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, options_json: str, seed: int, stamp: tuple[Any, ...]) -> SourceData:
    del stamp  # only part of the key: an edited file is read again
    return SOURCES[name].load(json.loads(options_json), seed)


def load_source(name: str, options: Mapping[str, Any], seed: int = 0) -> SourceData:
    """All samples of source ``name`` (before ``limit`` and the split), cached per process.

    The arrays are shared between callers: do not modify them.
    """
    source = get_source(name)
    loader_options = {k: v for k, v in options.items() if k not in COMMON_OPTIONS}
    key = json.dumps(loader_options, sort_keys=True)
    seed = int(seed) if source.seeded else 0
    return _load_cached(name, key, seed, _stamp(source, loader_options))


def load_data(spec: RunSpec) -> RunData:
    """Turn a spec's data fields into arrays: the ONE place a run's data is read and split.

    The source's samples (first ``dataset_options["limit"]`` of them when given) are
    split with :func:`cnnx.datasets.stratified_split` (``val_fraction``, the run's
    seed); with ``val_fraction`` None a source with a test split (MNIST, an image
    folder's ``test/``) validates on it, any other uses its default share (0.2).
    ``val_fraction`` 0 means no validation. A source that asks for normalisation gets
    it fitted on the training split only (:func:`cnnx.runs.files.normalize_run_data`).

    Raises:
        ConfigError: the split leaves no training or no validation sample (naming
            ``val_fraction`` or ``limit`` and the smallest value that works).
        DatasetError: the data cannot be read.
    """
    from cnnx.runs.files import normalize_run_data

    return normalize_run_data(_split(spec))


def _split(spec: RunSpec) -> RunData:
    from cnnx.datasets import stratified_split

    source = get_source(spec.dataset)
    options = dict(spec.dataset_options)
    data = load_source(spec.dataset, options, spec.seed)
    X, y = data.X, data.y
    read = len(y)
    limit = options.get("limit")
    if limit is not None:
        X, y = X[:limit], y[:limit]
    description = f"{data.description} ({len(y)} {data.unit})"
    result = dict(
        description=description,
        class_names=list(data.class_names),
        preprocessing=dict(data.preprocessing),
        samples_read=read,
        summary=data.summary,
    )
    fraction = spec.val_fraction
    if fraction is None and source.load_test is not None:
        return RunData((X, y), source.load_test(options), "test", **result)
    if fraction is None and data.test is not None:
        return RunData((X, y), data.test, "test", **result)
    if fraction is None:
        fraction = source.default_val_fraction
    if fraction == 0:
        return RunData((X, y), None, "val", **result)
    train_idx, val_idx = stratified_split(y, fraction, seed=spec.seed)
    if len(val_idx) == 0:
        raise _empty_validation(y, data.y, fraction, limit)
    return RunData((X[train_idx], y[train_idx]), (X[val_idx], y[val_idx]), "val", **result)


def _has_validation(y: np.ndarray, fraction: float) -> bool:
    counts = np.bincount(y) if len(y) else np.zeros(0, dtype=np.int64)
    return any(min(math.floor(n * fraction + 0.5), n - 1) >= 1 for n in counts)


def _empty_validation(
    y: np.ndarray, full_y: np.ndarray, fraction: float, limit: int | None
) -> ConfigError:
    """The error for a split without validation samples, with the smallest value that works."""
    if limit is not None:
        for n in range(limit + 1, len(full_y) + 1):
            if _has_validation(full_y[:n], fraction):
                detail = (
                    f"{limit} leaves the validation split empty; the smallest limit that works "
                    f"with val_fraction {fraction:g} is {n}"
                )
                return ConfigError(f"limit {detail}", field="limit", detail=detail)
    largest = int(np.bincount(y).max()) if len(y) else 0
    if largest >= 2:
        smallest = math.ceil(0.5 / largest * 10_000) / 10_000
        detail = (
            f"{fraction:g} leaves the validation split empty ({len(y)} samples, at most "
            f"{largest} of a class); the smallest value that works is {smallest:g}"
        )
    else:
        detail = f"{fraction:g}: no class has two samples, so nothing can be held out"
    return ConfigError(f"val_fraction {detail}", field="val_fraction", detail=detail)


# --- the bundled sources -----------------------------------------------------------------


def _digits6x6(options: Mapping[str, Any], seed: int) -> SourceData:
    from cnnx import datasets

    path = options.get("path")
    X, y = datasets.load_digits6x6(path)
    name = path if path is not None else "the bundled 6×6 digits"
    return SourceData(X, y, name, list(datasets.DIGITS6X6_CLASSES))


def _patterns(options: Mapping[str, Any], seed: int) -> SourceData:
    from cnnx import datasets

    X, y = datasets.make_patterns(**options)
    return SourceData(X, y, "the 11×11 patterns", list(datasets.PATTERN_CLASSES))


def _mnist(options: Mapping[str, Any], seed: int) -> SourceData:
    from cnnx import datasets

    # split "test" trains on (part of) the 10,000 test images: for a quick search where
    # only the test files are at hand; validation is then a val_fraction of them.
    split = options.get("split", "train")
    if split not in ("train", "test"):
        raise ConfigError(
            f"dataset_options.split must be 'train' or 'test', got {split!r}",
            field="dataset_options.split",
        )
    X, y = datasets.load_mnist(split, root=options.get("root"))
    return SourceData(X, y, f"MNIST {split}", [str(d) for d in range(10)], unit="images")


def _mnist_test(options: Mapping[str, Any]) -> Arrays:
    from cnnx import datasets

    if options.get("split") == "test":
        raise ConfigError(
            "dataset_options.split 'test' trains on MNIST's test images, so they cannot also "
            "validate the run; give val_fraction to hold out a share of them",
            field="val_fraction",
        )
    return datasets.load_mnist("test", root=options.get("root"))


register_source(
    DataSource(
        "digits6x6", _digits6x6, options=("path",), path_options=("path",),
        defaults={"model": "simple_cnn", "optimizer": "adam",
                  "hyperparameters": {"lr": 0.01, "beta1": 0.7, "beta2": 0.99},
                  "epochs": 300, "batch_size": None},
    )
)  # fmt: skip
register_source(
    DataSource(
        "mnist", _mnist, options=("root", "split"), path_options=("root",),
        load_test=_mnist_test,
        defaults={"model": "mnist_cnn", "optimizer": "adam", "hyperparameters": {"lr": 0.001},
                  "epochs": 3, "batch_size": 64},
    )
)  # fmt: skip
register_source(
    DataSource(
        "patterns", _patterns, options=("n_per_class", "size", "noise", "seed", "max_shift"),
        defaults={"model": "toy_convnet", "optimizer": "sgd", "hyperparameters": {"lr": 0.01},
                  "epochs": 500, "batch_size": 8},
    )
)  # fmt: skip


def resolve_path(value: Any) -> str:
    """A path option stored the way runs store them: absolute, ``~`` expanded, resolved."""
    return str(Path(os.fspath(value)).expanduser().resolve())


def load_test(spec: RunSpec) -> tuple[Arrays, str]:
    """The source's separate test split (only its files are read) and its description.

    Raises:
        ConfigError: the source has no test split.
    """
    source = get_source(spec.dataset)
    if source.load_test is None:
        raise ConfigError(f"dataset {spec.dataset} has no separate test split", field="dataset")
    X, y = source.load_test(dict(spec.dataset_options))
    unit = "images" if spec.dataset == "mnist" else "samples"
    name = "MNIST test" if spec.dataset == "mnist" else f"{spec.dataset} test"
    return (X, y), f"{name} ({len(y)} {unit})"
