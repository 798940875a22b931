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
    "is_workbook",
    "parse_image_size_flag",
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
