"""Experiments: a grid of configurations × seeds, run (in parallel) into tables and figures.

    import cnnx
    result = cnnx.experiment("report-table5", "out")          # a preset, by name
    result = cnnx.experiment(
        [{"name": "fast", "model": "simple", "optimizer": "adam", "lr": 0.01},
         {"name": "slow", "model": "simple", "optimizer": "adam", "lr": 0.001}],
        "out2", seeds=range(5), jobs=2)
    print(result.summary)

The module is callable: ``cnnx.experiment(...)`` is :func:`run_experiment`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from cnnx.errors import OutputExistsError
from cnnx.experiment.api import ExperimentResult, as_experiment, check_config, run_experiment
from cnnx.experiment.grid import PRESETS, Experiment, RunConfig, grid, parse_seeds, preset
from cnnx.experiment.runner import RunResult, execute, run_many
from cnnx.experiment.store import RunFileError

__all__ = [
    "PRESETS",
    "Experiment",
    "ExperimentResult",
    "OutputExistsError",
    "RunConfig",
    "RunFileError",
    "RunResult",
    "as_experiment",
    "check_config",
    "execute",
    "grid",
    "parse_seeds",
    "preset",
    "run_experiment",
    "run_many",
]


class _CallableModule(types.ModuleType):
    """Lets ``cnnx.experiment(...)`` call :func:`run_experiment` while staying a module."""

    def __call__(self, *args: Any, **kwargs: Any) -> ExperimentResult:
        return run_experiment(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
