"""Checkpoints: one ``.npz`` file, plain arrays and a JSON string, never a pickle.

Layout of the archive:

- ``__cnnx__``: a JSON document (format name and version, cnnx version, model
  name and constructor arguments, optimizer type and hyperparameters, training
  position, the shuffling generator's state, any metadata the caller adds);
- ``model/<name>``: every parameter and buffer, as host arrays, so weights
  trained on a GPU load on a machine without one;
- ``optimizer/<parameter>/<key>``: the optimizer's per-parameter state.

Files are written atomically (temporary file, fsync, rename), so a crash while
saving leaves the previous checkpoint intact, and read with
``allow_pickle=False``, so a hostile file cannot run code.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnx._version import __version__
from cnnx.errors import CheckpointError
from cnnx.nn.module import Module
from cnnx.optim import OPTIMIZERS, Optimizer
from cnnx.utils.atomic import atomic_write

FORMAT = "cnnx-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__cnnx__"
MODEL_PREFIX = "model/"
OPTIMIZER_PREFIX = "optimizer/"

# Refuse archives that claim more than this many uncompressed bytes in total
# before reading any member (a zip bomb, or not a checkpoint at all).
MAX_TOTAL_BYTES = 4 << 30
MAX_MEMBERS = 100_000


def module_generators(model: Module) -> dict[str, np.random.Generator]:
    """Named numpy Generators inside a model (e.g. each Dropout's), by ``"<module>.<attr>"``."""
    found = {}
    for mod_name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                found[f"{mod_name}.{attr}" if mod_name else attr] = value
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Module,
    optimizer: Optimizer | None = None,
    *,
    rng: np.random.Generator | None = None,
    epoch: int | None = None,
    step: int | None = None,
    **meta: Any,
) -> None:
    """Save ``model`` (and optionally ``optimizer`` and the training position) to ``path``.

    Args:
        path: file to write (``.npz`` is conventional); replaced atomically.
        model: weights and buffers are saved; for a :class:`~cnnx.models.Model` also
            its registry name and constructor arguments, so it can be rebuilt.
        optimizer: its type, hyperparameters, step count and state.
        rng: the host generator that shuffles minibatches; its exact state is saved.
        epoch: epochs completed; step: optimizer steps taken.
        **meta: extra JSON-serialisable metadata (dataset, device, configuration...).
    """
    arrays: dict[str, np.ndarray] = {}
    for name, value in model.state_dict().items():
        arrays[MODEL_PREFIX + name] = value
    document: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cnnx_version": __version__,
        "model": {
            "name": getattr(model, "name", None),
            "config": getattr(model, "config", None),
            "class": type(model).__name__,
        },
        "module_rngs": {k: g.bit_generator.state for k, g in module_generators(model).items()},
        "training": {"epoch": epoch, "step": step},
        "rng": None if rng is None else rng.bit_generator.state,
        "optimizer": None,
        "meta": meta,
    }
    if optimizer is not None:
        state = optimizer.state_dict()
        document["optimizer"] = {
            "type": state["type"],
            "hyper": state["hyper"],
            "step_count": state["step_count"],
            "params": [name for name, _ in optimizer.params],
        }
        for pname, entries in state["state"].items():
            for key, value in entries.items():
                arrays[f"{OPTIMIZER_PREFIX}{pname}/{key}"] = value
    arrays[META_KEY] = np.array(json.dumps(_jsonable(document)))
    with atomic_write(Path(path), "wb") as handle:
        _write_npz(handle, arrays)


def _write_npz(handle: Any, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` archive (what ``np.savez`` writes) with fixed member timestamps,
    so the same state always gives the same bytes."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: where it was read from.
        meta: the JSON document (see the module docstring).
        model_state: parameter and buffer arrays by dotted name (host numpy).
        optimizer_state: per-parameter optimizer arrays, ``{param: {key: array}}``.
    """

    path: Path
    meta: dict[str, Any]
    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def model_name(self) -> str | None:
        return self.meta["model"].get("name")

    @property
    def model_config(self) -> dict[str, Any]:
        return dict(self.meta["model"].get("config") or {})

    @property
    def epoch(self) -> int | None:
        return self.meta["training"].get("epoch")

    @property
    def step(self) -> int | None:
        return self.meta["training"].get("step")

    @property
    def extra(self) -> dict[str, Any]:
        """The ``**meta`` given to :func:`save_checkpoint`."""
        return dict(self.meta.get("meta") or {})

    def build_model(self) -> Module:
        """Rebuild the registered model and load the saved weights into it."""
        from cnnx import models

        name = self.model_name
        if not name:
            raise CheckpointError(
                f"{self.path}: the checkpoint does not name a registered model; build the model "
                "yourself and call restore_model(model)"
            )
        try:
            model = models.get(name, **self.model_config)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{self.path}: cannot rebuild model {name!r}: {exc}") from None
        self.restore_model(model)
        return model

    def restore_model(self, model: Module) -> None:
        """Load the saved weights, buffers and generator states into ``model``."""
        try:
            model.load_state_dict(self.model_state)
        except (KeyError, ValueError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            raise CheckpointError(f"{self.path}: {message}") from None
        generators = module_generators(model)
        for key, state in (self.meta.get("module_rngs") or {}).items():
            if key in generators:
                _set_state(generators[key], state, self.path, key)

    def build_optimizer(self, model: Module) -> Optimizer:
        """Recreate the saved optimizer over ``model``'s parameters, state included."""
        info = self.meta.get("optimizer")
        if not info:
            raise CheckpointError(f"{self.path}: the checkpoint holds no optimizer state")
        kind = info.get("type", "")
        cls = {c.__name__: c for c in OPTIMIZERS.values()}.get(kind)
        if cls is None:
            raise CheckpointError(f"{self.path}: unknown optimizer type {kind!r}")
        hyper = dict(info.get("hyper") or {})
        try:
            optimizer = cls(model.named_parameters(), **hyper)
        except (TypeError, ValueError, OverflowError) as exc:
            raise CheckpointError(f"{self.path}: bad optimizer hyperparameters: {exc}") from None
        self.restore_optimizer(optimizer)
        return optimizer

    def restore_optimizer(self, optimizer: Optimizer) -> None:
        """Load the saved optimizer state into ``optimizer`` (same type and parameters)."""
        info = self.meta.get("optimizer")
        if not info:
            raise CheckpointError(f"{self.path}: the checkpoint holds no optimizer state")
        names = [name for name, _ in optimizer.params]
        state = {
            "type": info.get("type"),
            "hyper": info.get("hyper") or {},
            "step_count": info.get("step_count", 0),
            "state": {name: self.optimizer_state.get(name, {}) for name in info.get("params", [])},
        }
        if sorted(info.get("params", [])) != sorted(names):
            missing = sorted(set(names) - set(info.get("params", [])))
            extra = sorted(set(info.get("params", [])) - set(names))
            raise CheckpointError(
                f"{self.path}: optimizer state does not match the model's parameters "
                f"(missing {missing}, unexpected {extra})"
            )
        try:
            optimizer.load_state_dict(state)
        except ValueError as exc:
            raise CheckpointError(f"{self.path}: {exc}") from None

    def restore_rng(self, rng: np.random.Generator) -> None:
        """Put ``rng`` in the saved state of the shuffling generator."""
        state = self.meta.get("rng")
        if state is None:
            raise CheckpointError(f"{self.path}: the checkpoint holds no generator state")
        _set_state(rng, state, self.path, "rng")

    def make_rng(self) -> np.random.Generator:
        """A new Generator in the saved shuffling state."""
        rng = np.random.default_rng()
        self.restore_rng(rng)
        return rng


def _set_state(rng: np.random.Generator, state: Any, path: Path, what: str) -> None:
    try:
        if (
            not isinstance(state, dict)
            or state.get("bit_generator") != type(rng.bit_generator).__name__
        ):
            raise ValueError("bit generator mismatch")
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: invalid generator state for {what}: {exc}") from None


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: the file is missing, truncated or corrupted, is not a cnnx
            checkpoint, has an unknown or newer format version, or contains anything
            but plain numeric arrays (pickled objects are refused, never loaded).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a directory; give a checkpoint file in it, e.g. {path / 'last.npz'} "
            f"or {path / 'best.npz'}"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror or exc}") from None
    arrays = _read_archive(path, raw)
    meta = _parse_meta(path, arrays.pop(META_KEY, None))
    model_state: dict[str, np.ndarray] = {}
    optimizer_state: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        if value.dtype.kind not in "biuf":
            raise CheckpointError(
                f"{path}: array {key!r} has dtype {value.dtype}, expected numbers"
            )
        if key.startswith(MODEL_PREFIX):
            model_state[key[len(MODEL_PREFIX) :]] = value
        elif key.startswith(OPTIMIZER_PREFIX):
            pname, _, entry = key[len(OPTIMIZER_PREFIX) :].rpartition("/")
            if not pname or not entry:
                raise CheckpointError(f"{path}: malformed optimizer array name {key!r}")
            optimizer_state.setdefault(pname, {})[entry] = value
        else:
            raise CheckpointError(f"{path}: unexpected array {key!r} in checkpoint")
    return Checkpoint(path, meta, model_state, optimizer_state)


def _read_archive(path: Path, raw: bytes) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_MEMBERS:
                raise CheckpointError(f"{path}: archive has {len(infos)} members, too many")
            total = sum(info.file_size for info in infos)
            if total > MAX_TOTAL_BYTES:
                raise CheckpointError(
                    f"{path}: archive claims {total} uncompressed bytes, more than the "
                    f"{MAX_TOTAL_BYTES} a checkpoint may hold"
                )
            names = [info.filename for info in infos]
    except CheckpointError:
        raise
    except Exception as exc:  # hostile input: zipfile raises many types on damaged archives
        raise CheckpointError(
            f"{path}: not a cnnx checkpoint (not a readable .npz archive: "
            f"{type(exc).__name__}: {exc})"
        ) from None
    if f"{META_KEY}.npy" not in names:
        raise CheckpointError(
            f"{path}: not a cnnx checkpoint (an .npz archive without the {META_KEY} record)"
        )
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            for key in archive.files:
                arrays[key] = np.asarray(archive[key])
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise CheckpointError(
                f"{path}: the archive contains pickled Python objects; refusing to load them "
                "(a cnnx checkpoint holds only numeric arrays)"
            ) from None
        raise CheckpointError(f"{path}: corrupted array data: {exc}") from None
    except Exception as exc:  # zipfile/zlib/np.lib.format errors on damaged members
        raise CheckpointError(
            f"{path}: truncated or corrupted checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    return arrays


def _parse_meta(path: Path, record: np.ndarray | None) -> dict[str, Any]:
    if record is None or record.dtype.kind != "U" or record.shape != ():
        raise CheckpointError(f"{path}: not a cnnx checkpoint (malformed {META_KEY} record)")
    try:
        meta = json.loads(str(record))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupted metadata: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cnnx checkpoint (format is not {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: unknown checkpoint format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} was written by a newer cnnx "
            f"(this is cnnx {__version__}, which reads version {FORMAT_VERSION}); upgrade cnnx"
        )
    problem = _schema_problem(meta)
    if problem:
        raise CheckpointError(f"{path}: corrupted metadata: {problem}")
    return meta


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _schema_problem(meta: dict[str, Any]) -> str:
    """Describe the first field of the JSON record with the wrong type ("" when all fit)."""
    model, training = meta.get("model"), meta.get("training")
    if not isinstance(model, dict):
        return "'model' must be an object"
    if not isinstance(model.get("name"), str | None) or not isinstance(
        model.get("config"), dict | None
    ):
        return "'model' needs a string 'name' and an object 'config'"
    if not isinstance(training, dict):
        return "'training' must be an object"
    for key in ("epoch", "step"):
        value = training.get(key)
        if value is not None and (not _is_int(value) or value < 0):
            return f"'training.{key}' must be a non-negative integer"
    for key in ("rng", "optimizer"):
        if not isinstance(meta.get(key), dict | None):
            return f"{key!r} must be an object"
    for key in ("module_rngs", "meta"):
        if not isinstance(meta.get(key) or {}, dict):
            return f"{key!r} must be an object"
    optimizer = meta.get("optimizer")
    if optimizer is not None:
        hyper, params = optimizer.get("hyper"), optimizer.get("params")
        if not isinstance(optimizer.get("type"), str):
            return "'optimizer.type' must be a string"
        if not isinstance(hyper, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in hyper.values()
        ):
            return "'optimizer.hyper' must map names to numbers"
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return "'optimizer.params' must be a list of names"
        if not _is_int(optimizer.get("step_count")) or optimizer["step_count"] < 0:
            return "'optimizer.step_count' must be a non-negative integer"
    return ""
