"""A run's output directory: config.json, metrics.jsonl and checkpoints."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from cnnx.checkpoint import save_checkpoint
from cnnx.nn.module import Module
from cnnx.optim.optimizer import Optimizer
from cnnx.train import EpochRecord
from cnnx.utils.atomic import atomic_write_text
from cnnx.utils.output_dir import claim_output_dir

CONFIG = "config.json"
METRICS = "metrics.jsonl"
LAST = "last.npz"
BEST = "best.npz"


class RunDirectory:
    """Writes a run's files into one directory, never clobbering another run by accident."""

    def __init__(self, path: Path):
        self.path = path
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
        return json.loads((self.path / CONFIG).read_text(encoding="utf-8"))

    def truncate_metrics(self, epochs: int) -> None:
        """Keep only the first ``epochs`` lines of metrics.jsonl (used when resuming)."""
        target = self.path / METRICS
        lines = target.read_text(encoding="utf-8").splitlines()[:epochs] if target.exists() else []
        atomic_write_text(target, "".join(line + "\n" for line in lines))

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
