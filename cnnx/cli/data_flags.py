"""Flags for your own data files, shared by ``cnnx train``, ``evaluate``, ``predict`` and
``experiment``: ``--data PATH`` with ``--format``, ``--channels``, ``--image-size``,
``--label-column``, ``--channels-last``, ``--normalize`` and ``--skip-bad``.

``--data`` names a 6×6 workbook (``.xlsx``) as before, or an image folder, a CSV file,
an ``.npz`` or an ``.npy`` file, which train the ``files`` data source
(:mod:`cnnx.runs.files`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = [
    "FILE_FLAGS",
    "file_data_options",
    "file_flags_given",
    "file_options",
    "is_own_data",
    "is_workbook",
    "load_own_inputs",
    "parse_image_size_flag",
    "read_images_like_run",
    "sample_origin",
]

#: flag parameter -> dataset option of the ``files`` source.
FILE_FLAGS = {
    "data_format": "format",
    "channels": "channels",
    "image_size": "image_size",
    "label_column": "label_column",
    "channels_last": "channels_last",
    "normalize": "normalize",
    "skip_bad": "skip_bad",
}

_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")


def parse_image_size_flag(ctx: click.Context, param: click.Parameter, value: str | None):
    """click callback: ``"28"`` or ``"28x32"`` -> ``[28, 32]``."""
    from cnnx.datasets import parse_image_size

    if value is None:
        return None
    try:
        return list(parse_image_size(value))  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.BadParameter(str(exc).replace("image size", "expected H or HxW")) from None


def file_data_options(
    *, normalize: bool = True, format_flag: str = "--format"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the own-data flags to a click command (``--data`` itself is the command's).

    Args:
        normalize: add ``--normalize`` (training only: evaluation and prediction apply
            the run's stored normalisation).
        format_flag: the flag's name (``cnnx predict`` has ``--format`` for its output).
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        flags = [
            click.option(format_flag, "data_format",
                         type=click.Choice(["folder", "csv", "npz", "npy"]),
                         help="Format of --data (default: from the path: a folder, .csv, "
                         ".npz or .npy)."),
            click.option("--channels", type=click.Choice(["1", "3"]),
                         callback=lambda c, p, v: None if v is None else int(v),
                         help="Images as greyscale (1) or colour (3) (default: 1 if every "
                         "image is greyscale)."),
            click.option("--image-size", callback=parse_image_size_flag, metavar="H[xW]",
                         help="Resize images to this size (default: the most common "
                         "size); for CSV: the shape of a row's pixels."),
            click.option("--label-column", metavar="first|last|NAME",
                         help="CSV: the label column (default: the one named 'label', "
                         "else the first)."),
            click.option("--channels-last", is_flag=True, default=None,
                         help="Arrays or CSV rows store pixels (H, W, C), not (C, H, W)."),
            click.option("--skip-bad", is_flag=True, default=None,
                         help="Leave out unreadable images, bad rows or bad samples "
                         "(counted and named) instead of stopping."),
        ]  # fmt: skip
        if normalize:
            flags.append(
                click.option(
                    "--normalize",
                    is_flag=True,
                    default=None,
                    help="Standardise each channel with the training split's mean and std "
                    "(stored with the run; evaluate and predict apply the same).",
                )
            )
        for flag in reversed(flags):
            command = flag(command)
        return command

    return decorate


def is_workbook(path: Path | str | None) -> bool:
    return path is not None and Path(path).suffix.lower() in _WORKBOOK_SUFFIXES


def file_flags_given(params: dict[str, Any]) -> list[str]:
    """The own-data flags given, as ``--flag`` names."""
    return [
        "--" + name.replace("data_format", "format").replace("_", "-")
        for name in FILE_FLAGS
        if params.get(name) is not None
    ]


def file_options(params: dict[str, Any]) -> dict[str, Any]:
    """The ``files`` source options the flags set (flags not given are left out)."""
    return {
        option: params[name] for name, option in FILE_FLAGS.items() if params.get(name) is not None
    }


def is_own_data(path: Path, dataset: str | None) -> bool:
    """Whether ``path`` is read as own data (not a workbook, IDX file or bare array):
    a folder, a ``.csv`` or ``.npz`` file, or any non-workbook file when the checkpoint's
    run trained on own data (so its preprocessing applies)."""
    if is_workbook(path):
        return False
    if Path(path).is_dir() or Path(path).suffix.lower() in (".csv", ".tsv", ".npz"):
        return True
    return dataset == "files" and Path(path).suffix.lower() == ".npy"


def load_own_inputs(
    path: Path, extra: dict[str, Any], params: dict[str, Any], *, require_labels: bool
):
    """Read ``path`` the way a checkpoint's run read its data.

    Args:
        path: a folder, CSV, ``.npz`` or ``.npy`` file.
        extra: the checkpoint's stored extras (``preprocessing``, ``class_names``).
        params: the command's flags (format, channels, image size, label column,
            channels-last, skip-bad override the stored preprocessing).
        require_labels: refuse unlabelled data (evaluation).

    Returns:
        ``(X, y or None, description, notes, sample names or None)``: every sample,
        including a given test part, normalised as the run's training data was.
    """
    import numpy as np

    from cnnx.datasets import load_for_model

    preprocessing = dict(extra.get("preprocessing") or {})
    for name in ("channels", "image_size"):
        if params.get(name) is not None:
            preprocessing[name] = params[name]
    names = extra.get("class_names")
    data = load_for_model(
        path, preprocessing, format=params.get("data_format"),
        class_names=names if isinstance(names, list) and names else None,
        require_labels=require_labels, skip_bad=bool(params.get("skip_bad")),
        channels_last=params.get("channels_last"), label_column=params.get("label_column"),
    )  # fmt: skip
    X, y = data.X, data.y
    if data.test is not None:
        X = np.concatenate([X, data.test[0]])
        y = None if y is None or data.test[1] is None else np.concatenate([y, data.test[1]])
    return X, y, f"{data.source} ({len(X)} samples)", list(data.notes), data.sample_names


def read_images_like_run(paths: list[Path], extra: dict[str, Any]):
    """Image files read as a checkpoint's own-data run read its images: its channels and
    image size, then its stored normalisation; ``(N, C, H, W) float32``."""
    from cnnx.datasets import apply_preprocessing, read_images

    preprocessing = dict(extra.get("preprocessing") or {})
    size = preprocessing.get("image_size")
    if size is None:
        raise click.UsageError(
            "this checkpoint's run does not record an image size; predict on a folder or "
            "data file instead"
        )
    X = read_images(paths, channels=int(preprocessing.get("channels") or 1), image_size=size)
    return apply_preprocessing(X, preprocessing)


def sample_origin(names: list[str]) -> tuple[str, list[Any]]:
    """The column naming where each own-data sample came from: ``("row", [2, 3, ...])``
    for CSV rows, else ``("file", [relative paths])``."""
    if all(name.startswith("row ") for name in names):
        return "row", [int(name[4:]) for name in names]
    return "file", list(names)
