"""Hyperparameter search with Optuna over cnnx's run definition.

    from cnnx import runs, tune
    space = tune.SearchSpace.parse(["lr=loguniform:1e-4:1e-1"])
    result = tune.tune(runs.defaults("digits6x6").replace(epochs=50), space, trials=20)
    print(result.best.params, result.best.value)

The search space is parsed from ``--param`` texts (:mod:`cnnx.tune.space`), each
trial is one run definition trained once per seed (:mod:`cnnx.tune.trial`), and
:func:`tune` asks Optuna for trials and tells it their results
(:mod:`cnnx.tune.study`). Optuna is an optional dependency (the ``tune`` extra).
"""

from cnnx.tune.presets import PRESETS, preset
from cnnx.tune.space import Param, SearchSpace, SpaceError, parse_param
from cnnx.tune.study import SAMPLERS, TuneError, TuneResult, best_trial, tune

__all__ = [
    "PRESETS",
    "SAMPLERS",
    "Param",
    "SearchSpace",
    "SpaceError",
    "TuneError",
    "TuneResult",
    "best_trial",
    "parse_param",
    "preset",
    "tune",
]
