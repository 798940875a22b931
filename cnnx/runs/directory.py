"""A run's directory: config.json (the spec), metrics.jsonl and checkpoints."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from cnnx.checkpoint import save_checkpoint
from cnnx.errors import CnnxError, ConfigError, OutputExistsError
from cnnx.nn.module import Module
from cnnx.optim.optimizer import Optimizer
from cnnx.runs.signals import interrupts_deferred
from cnnx.train import EpochRecord
from cnnx.utils.atomic import atomic_write_text
from cnnx.utils.output_dir import LOCK_FILE, DirectoryLock, check_output_dir, visible_entries

CONFIG = "config.json"
METRICS = "metrics.jsonl"
LAST = "last.npz"
BEST = "best.npz"

_METRIC_FIELDS = {"epoch": int, "loss": float, "accuracy": float, "seconds": float}


#: The files of a run; everything else in its directory belongs to the user.
RUN_FILES = (CONFIG, METRICS, LAST, BEST)
#: Where ``--overwrite`` keeps the run it replaces until the new run's first checkpoint.
REPLACED = ".replaced-run"
_HOW_TO_REUSE = "pass --overwrite to replace that run, or --resume it"


class RunWriteError(CnnxError):
    """A run's file could not be written (disk full, permissions).

    Checkpoints are written atomically, so the last one written before is intact.
    """


class RunDirectory:
    """A run's directory: writes its files, holds its lock, never loses another run by accident.

    Life of a new run: :meth:`open_new` (locks; with ``overwrite`` moves the old run's
    files aside into ``.replaced-run/``), then :meth:`commit` once the new run has a
    checkpoint (the old files are deleted), or :meth:`abandon` if it fails before (the
    new files are removed and the old ones put back). A directory whose run never
    finished an epoch (config.json alone) is reused without ``overwrite``.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._metrics: TextIO | None = None
        self._lock = DirectoryLock(self.path, "run directory")
        self._created = False
        self._replaced: Path | None = None
        self.saved_epoch: int | None = None

    # --- opening ---------------------------------------------------------------------

    @staticmethod
    def holds_finished_run(path: Path) -> bool:
        """Whether ``path`` holds a run with at least one finished epoch (or a replaced one)."""
        metrics = path / METRICS
        return (
            (path / LAST).exists()
            or (path / BEST).exists()
            or (path / REPLACED).exists()
            or (metrics.exists() and metrics.stat().st_size > 0)
        )

    @classmethod
    def check_new(cls, path: str | Path, overwrite: bool) -> None:
        """Refuse ``path`` for a new run (creating nothing) if that would lose anything.

        Raises:
            OutputExistsError: it holds a finished run, or other files, and not ``overwrite``.
        """
        path = Path(path)
        check_output_dir(path, reuse=True, how_to_reuse=_HOW_TO_REUSE)
        if not path.is_dir() or overwrite:
            return
        if cls.holds_finished_run(path):
            held = [n for n in visible_entries(path) if n in RUN_FILES or n == REPLACED]
            raise OutputExistsError(
                f"--output-dir {path} already holds a run ({', '.join(held)}); choose a new "
                f"directory, {_HOW_TO_REUSE}"
            )
        foreign = [n for n in visible_entries(path) if n not in RUN_FILES]
        if foreign:
            raise OutputExistsError(
                f"--output-dir {path} already exists and is not empty ({', '.join(foreign[:5])}); "
                f"choose a new directory, {_HOW_TO_REUSE}"
            )

    @classmethod
    def create(cls, path: Path, overwrite: bool) -> RunDirectory:
        """Prepare and lock ``path`` for a new run (see :meth:`open_new`)."""
        return cls.open_new(path, overwrite)

    @classmethod
    def open_new(cls, path: str | Path, overwrite: bool) -> RunDirectory:
        """Create (or reuse) and lock ``path`` for a new run.

        Raises:
            OutputExistsError: as :meth:`check_new`.
            RunLockedError: another process uses the directory.
        """
        path = Path(path)
        cls.check_new(path, overwrite)
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run._created = created
        run._lock.acquire()
        try:
            run._restore_replaced()
            cls.check_new(path, overwrite)  # again, now that no one else can change it
            if overwrite and cls.holds_finished_run(path):
                run._replaced = path / REPLACED
                run._replaced.mkdir()
                for name in RUN_FILES:
                    if (path / name).exists():
                        os.replace(path / name, run._replaced / name)
            else:
                for name in RUN_FILES:  # what a run that never finished an epoch left
                    (path / name).unlink(missing_ok=True)
        except BaseException:
            run._lock.release()
            raise
        return run

    @classmethod
    def open_existing(cls, path: str | Path) -> RunDirectory:
        """Lock the directory of a saved run (to resume it).

        Raises:
            RunLockedError: another process uses the directory.
        """
        run = cls(Path(path))
        run._lock.acquire()
        try:
            run._restore_replaced()
        except BaseException:
            run._lock.release()
            raise
        return run

    def _restore_replaced(self) -> None:
        """Put back a run that a killed ``--overwrite`` had moved aside."""
        replaced = self.path / REPLACED
        if not replaced.is_dir():
            return
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for item in replaced.iterdir():
            os.replace(item, self.path / item.name)
        replaced.rmdir()

    def commit(self) -> None:
        """The new run has its first checkpoint: the run it replaced can go."""
        if self._replaced is not None:
            shutil.rmtree(self._replaced, ignore_errors=True)
            self._replaced = None

    def abandon(self) -> None:
        """The new run failed before its first checkpoint: remove it, restore what it replaced."""
        self.close_metrics()
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        if self._replaced is not None:
            self._restore_replaced()
            self._replaced = None
        elif self._created and not visible_entries(self.path):
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            self.release()
            with contextlib.suppress(OSError):
                self.path.rmdir()

    # --- writing ---------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self, target: Path) -> Iterator[None]:
        """Turn an OSError while writing ``target`` into one line naming it and what is intact."""
        try:
            yield
        except OSError as exc:
            reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or exc)
            if self.saved_epoch is not None and (self.path / LAST).exists():
                intact = (
                    f"the last checkpoint, {self.path / LAST} (epoch {self.saved_epoch}), is intact"
                )
            else:
                intact = "no checkpoint had been written yet"
            raise RunWriteError(f"could not write {target}: {reason}; {intact}") from None

    def write_config(self, config: dict[str, Any]) -> None:
        with self.writing(self.path / CONFIG):
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
        with self.writing(target):
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
        with self.writing(self.path / METRICS):
            if self._metrics is None:
                self._metrics = open(self.path / METRICS, "a", encoding="utf-8")
            self._metrics.write(json.dumps(record.to_dict()) + "\n")
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
        # Ctrl-C or SIGTERM while the archive is written is raised once it is complete.
        with interrupts_deferred(), self.writing(target):
            save_checkpoint(
                target, model, optimizer, rng=rng, epoch=epoch, step=step, config=config, **meta
            )
        if name == LAST:
            self.saved_epoch = epoch
        return target

    def close_metrics(self) -> None:
        if self._metrics is not None:
            with contextlib.suppress(OSError):
                self._metrics.close()
            self._metrics = None

    def release(self) -> None:
        """Drop the directory's lock."""
        self._lock.release()

    def close(self) -> None:
        """Close metrics.jsonl and release the lock."""
        self.close_metrics()
        self.release()


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
            # Some messages end in " at" already ("Invalid control character at").
            f"{path}: not valid JSON ({exc.msg.removesuffix(' at')} at line {exc.lineno}, "
            f"column {exc.colno})"
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


def saved_spec(path: str | Path) -> Any:
    """The spec of the run saved in ``path``, to resume it.

    A run that a killed ``--overwrite`` had moved aside is put back first (under the
    directory's lock).

    Raises:
        CnnxError: no config.json and last.npz there.
        ConfigError: config.json is damaged (naming it and the field).
        RunLockedError: another process uses the directory.
    """
    from cnnx.runs.spec import RunSpec

    folder = RunDirectory.open_existing(Path(path))
    try:
        if not (folder.path / CONFIG).is_file() or not (folder.path / LAST).is_file():
            raise CnnxError(f"{folder.path}: no {CONFIG} and {LAST} there to resume from")
        return RunSpec.from_dict(folder.read_config(), source=str(folder.path / CONFIG))
    finally:
        folder.close()
