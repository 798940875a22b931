"""A run's directory: config.json (the spec), metrics.jsonl and checkpoints."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from cnnx.checkpoint import save_checkpoint
from cnnx.errors import ConfigError
from cnnx.nn.module import Module
from cnnx.optim.optimizer import Optimizer
from cnnx.train import EpochRecord
from cnnx.utils.atomic import atomic_write_text
from cnnx.utils.output_dir import claim_output_dir

CONFIG = "config.json"
METRICS = "metrics.jsonl"
LAST = "last.npz"
BEST = "best.npz"

_METRIC_FIELDS = {"epoch": int, "loss": float, "accuracy": float, "seconds": float}


class RunDirectory:
    """Writes a run's files into one directory, never clobbering another run by accident."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._metrics: TextIO | None = None

    @classmethod
    def create(cls, path: Path, overwrite: bool) -> RunDirectory:
        """Prepare ``path`` for a new run.

        Raises:
            OutputExistsError: ``path`` exists and is not empty, and ``overwrite`` is False.
        """
        path = claim_output_dir(
            path,
            reuse=overwrite,
            how_to_reuse="pass --overwrite to replace that run, or --resume it",
        )
        run = cls(path)
        if overwrite:
            for name in (METRICS, LAST, BEST):
                (path / name).unlink(missing_ok=True)
        return run

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.path / CONFIG, json.dumps(config, indent=2) + "\n")

    def read_config(self) -> dict[str, Any]:
        """The parsed config.json.

        Raises:
            ConfigError: missing, unreadable or not JSON (naming the file).
        """
        return read_config_file(self.path / CONFIG)

    def read_metrics(self, epochs: int | None = None) -> list[dict[str, Any]]:
        """The first ``epochs`` records of metrics.jsonl (all when None).

        Raises:
            ConfigError: a line is not a metrics record (naming the file, line and field).
        """
        target = self.path / METRICS
        if not target.exists():
            return []
        lines = target.read_text(encoding="utf-8").splitlines()
        if epochs is not None:
            lines = lines[:epochs]
        return [_parse_metrics_line(target, number, line) for number, line in enumerate(lines, 1)]

    def truncate_metrics(self, epochs: int) -> None:
        """Keep only the first ``epochs`` lines of metrics.jsonl (used when resuming)."""
        target = self.path / METRICS
        lines = target.read_text(encoding="utf-8").splitlines()[:epochs] if target.exists() else []
        atomic_write_text(target, "".join(line + "\n" for line in lines))

    def best_so_far(self, epochs: int) -> tuple[float, float]:
        """``(val_accuracy, val_loss)`` of the best of the first ``epochs`` epochs.

        Best: the highest validation accuracy; among equal ones, the lowest validation
        loss. ``(-1, inf)`` when none was validated.
        """
        best = (-1.0, math.inf)
        for row in self.read_metrics(epochs):
            if row.get("val_accuracy") is not None and is_better(
                row["val_accuracy"], row["val_loss"], best
            ):
                best = (row["val_accuracy"], row["val_loss"])
        return best

    def append_metrics(self, record: EpochRecord) -> None:
        """Append one epoch as a JSON line, flushed at once so a killed run keeps it."""
        if self._metrics is None:
            self._metrics = open(self.path / METRICS, "a", encoding="utf-8")
        self._metrics.write(json.dumps(asdict(record)) + "\n")
        self._metrics.flush()

    def save(
        self,
        name: str,
        model: Module,
        optimizer: Optimizer | None,
        config: dict[str, Any],
        *,
        rng: np.random.Generator | None = None,
        epoch: int | None = None,
        step: int | None = None,
        **meta: Any,
    ) -> Path:
        target = self.path / name
        save_checkpoint(
            target, model, optimizer, rng=rng, epoch=epoch, step=step, config=config, **meta
        )
        return target

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None


def is_better(val_accuracy: float, val_loss: float | None, best: tuple[float, float]) -> bool:
    """Whether an epoch beats ``best = (accuracy, loss)``.

    Higher validation accuracy wins; on equal accuracy, lower validation loss wins.
    """
    loss = math.inf if val_loss is None else val_loss
    return val_accuracy > best[0] or (val_accuracy == best[0] and loss < best[1])


def read_config_file(path: Path) -> Any:
    """Parse a JSON file cnnx reads back, as one line naming the file on failure.

    Raises:
        ConfigError: missing, unreadable, not UTF-8, or not JSON.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None


def _parse_metrics_line(path: Path, number: int, line: str) -> dict[str, Any]:
    where = f"{path}, line {number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected an object with one epoch's metrics")
    for name, kind in _METRIC_FIELDS.items():
        value = row.get(name)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (kind is int and not isinstance(value, int))
        ):
            raise ConfigError(f"{where}: field {name!r} must be a number, got {value!r}")
    for name in ("val_loss", "val_accuracy"):
        value = row.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{where}: field {name!r} must be a number or null, got {value!r}")
    if (row.get("val_loss") is None) != (row.get("val_accuracy") is None):
        raise ConfigError(f"{where}: fields 'val_loss' and 'val_accuracy' must both be set or null")
    return row
