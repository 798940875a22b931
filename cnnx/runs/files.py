"""The ``files`` data source: a run on your own image folder, CSV file or NumPy arrays.

``RunSpec(dataset="files", dataset_options={"path": "/abs/photos", ...})`` reads the path
with :func:`cnnx.datasets.load_data_file`. Options:

* ``path`` (required): the folder or file; stored absolute and resolved;
* ``format``: ``folder``, ``csv``, ``npz`` or ``npy`` (default: from the path);
* ``channels`` (1 or 3), ``image_size`` (``H`` or ``[H, W]``), ``label_column``,
  ``channels_last``, ``labels`` (an ``.npy`` labels file), ``skip_bad``: as in
  :func:`~cnnx.datasets.load_data_file`;
* ``normalize``: standardise each channel with the mean and standard deviation of the
  run's training split only; the statistics go into the run's ``preprocessing``;
* ``limit`` (every source): only the first N samples.

A folder's ``test/`` (or ``val/``) part, or an ``.npz``'s ``X_test``/``y_test``, is the
validation data when the spec's ``val_fraction`` is None; otherwise (and for data
without such a part) a stratified 20 % is held out.

Default run: the ``convnet`` preset sized from the data, Adam (lr 0.001), 20 epochs,
minibatches of 32.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cnnx.errors import ConfigError
from cnnx.runs.data import DataSource, RunData, SourceData, register_source

if TYPE_CHECKING:
    from cnnx.runs.spec import RunSpec

__all__ = ["FILE_OPTIONS", "normalize_run_data", "size_model_to_data"]

#: What a ``files`` spec's dataset_options may hold (besides ``limit``).
FILE_OPTIONS = (
    "path", "format", "channels", "image_size", "label_column", "channels_last", "labels",
    "skip_bad", "normalize",
)  # fmt: skip

_LOADER_OPTIONS = ("channels", "image_size", "label_column", "channels_last", "labels", "skip_bad")


def _load(options: Mapping[str, Any], seed: int) -> SourceData:
    from cnnx.datasets import load_data_file

    del seed  # the files are read the same way for every seed
    if not options.get("path"):
        raise ConfigError(
            "dataset files needs dataset_options.path (cnnx train --data PATH)",
            field="dataset_options.path",
            detail="needs a path",
        )
    kwargs = {k: options[k] for k in _LOADER_OPTIONS if options.get(k) is not None}
    try:
        data = load_data_file(options["path"], options.get("format"), **kwargs)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(
            f"dataset files: {exc}", field="dataset_options", detail=str(exc)
        ) from None
    if data.y is None:
        data.split()  # raises the one-line "has no labels" error
    preprocessing = {
        **data.options,
        "format": data.format,
        "normalize": bool(options.get("normalize", False)),
    }
    test = None
    if data.test is not None and data.test[1] is not None:
        test = (data.test[0], data.test[1])
    return SourceData(
        data.X, data.y, data.source, list(data.class_names),
        unit="images" if data.format == "folder" else "samples",
        preprocessing=preprocessing, summary=data.summary(show_split=False), test=test,
    )  # fmt: skip


def normalize_run_data(data: RunData) -> RunData:
    """Fit per-channel normalisation on ``data.train`` and apply it to train and val, when
    the source asked for it (``preprocessing["normalize"] is True``); a source's summary
    gets the split sizes.

    The statistics replace the request in ``preprocessing``
    (``{"mean": [...], "std": [...]}``), which the run stores with its checkpoints.
    """
    from cnnx.datasets import Normalization

    if data.summary:
        n_val = 0 if data.val is None else len(data.val[1])
        data = replace(data, summary=_insert_line(
            data.summary, f"split     train {len(data.train[1]):,}, {data.val_name} {n_val:,}"
        ))  # fmt: skip
    if data.preprocessing.get("normalize") is not True:
        return data
    norm = Normalization.fit(data.train[0])
    train = (norm.apply(data.train[0]), data.train[1])
    val = None if data.val is None else (norm.apply(data.val[0]), data.val[1])
    preprocessing = {**data.preprocessing, "normalize": norm.to_dict()}
    summary = f"{data.summary}\nnote      {norm.describe()}" if data.summary else data.summary
    return replace(data, train=train, val=val, preprocessing=preprocessing, summary=summary)


def _insert_line(summary: str, line: str) -> str:
    """``line`` after the summary's description lines, before its notes and warnings."""
    lines = summary.splitlines()
    at = next((i for i, t in enumerate(lines) if t.startswith(("note", "warning"))), len(lines))
    return "\n".join([*lines[:at], line, *lines[at:]])


def size_model_to_data(spec: RunSpec, data: RunData) -> RunSpec:
    """``spec`` with a data-sized model's (``convnet``'s) channels, image size and class
    count filled in from ``data``; options the spec already sets are kept."""
    from cnnx import models

    sizes = models.data_options(spec.model, data.input_shape, len(data.class_names))
    missing = {k: v for k, v in sizes.items() if k not in spec.model_options}
    if not missing:
        return spec
    return spec.replace(model_options={**spec.model_options, **missing})


register_source(
    DataSource(
        "files", _load, options=FILE_OPTIONS, path_options=("path", "labels"),
        defaults={"model": "convnet", "optimizer": "adam", "hyperparameters": {"lr": 0.001},
                  "epochs": 20, "batch_size": 32},
    )
)  # fmt: skip
