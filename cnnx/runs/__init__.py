"""One definition of a training run, used by ``cnnx train``, ``evaluate``/``predict``,
``cnnx experiment``, the cluster runner and ``cnnx tune``.

    from cnnx import runs
    spec = runs.defaults("digits6x6").replace(epochs=20, seed=3)
    outcome = runs.execute(spec)                  # or run_dir="runs/a" to keep it
    print(outcome.val_accuracy)

- :class:`RunSpec`: data, model, optimizer and hyperparameters, epochs, batch size,
  validation share, seed, device; ``to_dict``/``from_dict`` (validated, errors name the
  file and field).
- :func:`defaults`: a dataset's default run.
- :func:`load_data`: the one place a spec's data is read and split (:class:`RunData`);
  data sources are registered by name (:func:`register_source`).
- :func:`build`: the spec's model and optimizer.
- :func:`execute`: the one function that runs a spec (:class:`RunOutcome`).
"""

from cnnx.runs.data import (
    SOURCES,
    DataSource,
    RunData,
    SourceData,
    get_source,
    load_data,
    load_source,
    load_test,
    register_source,
)
from cnnx.runs.directory import (
    BEST,
    CONFIG,
    LAST,
    METRICS,
    RunDirectory,
    read_config_file,
    saved_spec,
)
from cnnx.runs.execute import DIVERGED, OK, RunOutcome, RunStart, build, check_fits, execute
from cnnx.runs.spec import RunSpec, defaults, optimizer_hyperparameters

__all__ = [
    "BEST",
    "CONFIG",
    "DIVERGED",
    "LAST",
    "METRICS",
    "OK",
    "SOURCES",
    "DataSource",
    "RunData",
    "RunDirectory",
    "RunOutcome",
    "RunSpec",
    "RunStart",
    "SourceData",
    "build",
    "check_fits",
    "defaults",
    "execute",
    "get_source",
    "load_data",
    "load_source",
    "load_test",
    "optimizer_hyperparameters",
    "read_config_file",
    "register_source",
    "saved_spec",
]
