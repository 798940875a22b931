"""``cnnx inspect``: a checkpoint's health report on data; and the data those commands share.

Every command that looks inside a checkpoint (``inspect``, ``explain``, ``show``)
reads its samples the same way: from INPUT when given (a 6×6 workbook, an IDX image
file, a ``.npy`` array or an ``.npz`` with ``X`` and ``y``; ``--labels`` adds labels
from an IDX label file or a ``.npy``), else from the run stored in the checkpoint
(its dataset, split with its seed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from cnnx.checkpoint import Checkpoint, load_checkpoint
from cnnx.errors import DatasetError


@dataclass
class Inspection:
    """A loaded checkpoint with the samples to look at."""

    checkpoint: Checkpoint
    model: Any
    X: np.ndarray
    y: np.ndarray | None
    class_names: list[str]
    description: str


def _read_labels(path: Path) -> np.ndarray:
    from cnnx import datasets

    if not path.is_file():
        raise DatasetError(f"--labels {path}: no such file")
    if path.name.lower().endswith(".npy"):
        labels = np.load(path, allow_pickle=False)
    else:
        labels = datasets.read_idx(path)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DatasetError(
            f"--labels {path}: expected a 1-D integer array, got shape {labels.shape} "
            f"dtype {labels.dtype}"
        )
    return labels.astype(np.int64)


def _read_input(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    from cnnx.cli.checkpoints import load_inputs

    return load_inputs(path)


def _stored_run(
    checkpoint: Checkpoint, split: str
) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """The samples of the run that wrote the checkpoint: its train/val split, or all.

    Read back through ``cnnx.runs.load_data``, the one place a run's data is read and split.
    """
    from cnnx import runs

    config = checkpoint.extra.get("config")
    if not config:
        raise DatasetError(
            f"{checkpoint.path}: the checkpoint does not record the run that saved it; give INPUT"
        )
    spec = runs.RunSpec.from_dict(config, source=f"{checkpoint.path} (its stored run)")
    if split == "all":
        spec = spec.replace(val_fraction=0.0)
    data = runs.load_data(spec)
    if split in ("train", "all") or data.val is None:
        (X, y), part = data.train, ("train" if split == "train" and data.val else "all")
    else:
        (X, y), part = data.val, data.val_name
    return X, y, f"{data.description}, {part} split", list(data.class_names)


def open_for_inspection(
    checkpoint_path: Path,
    input_path: Path | None,
    labels_path: Path | None = None,
    split: str = "train",
) -> Inspection:
    """Load a checkpoint and the samples to inspect it on (see the module docstring)."""
    from cnnx.cli.checkpoints import class_names

    checkpoint = load_checkpoint(checkpoint_path)
    model = checkpoint.build_model()
    classes = int(getattr(model, "num_classes", 0) or 0)
    names = checkpoint.extra.get("class_names")
    if not (isinstance(names, list) and len(names) == classes):
        dataset = checkpoint.extra.get("dataset") or (checkpoint.extra.get("config") or {}).get(
            "dataset"
        )
        names = class_names(dataset, classes)
    if input_path is None:
        if labels_path is not None:
            raise click.UsageError("--labels goes with INPUT")
        X, y, description, stored_names = _stored_run(checkpoint, split)
        if len(stored_names) == classes:
            names = stored_names
    else:
        from cnnx.cli.data_flags import is_own_data, load_own_inputs

        run_dataset = (checkpoint.extra.get("config") or {}).get("dataset")
        own = run_dataset == "files" or input_path.is_dir() or input_path.suffix == ".csv"
        if own and is_own_data(input_path, run_dataset):
            # An image folder or CSV, or a file for a model trained on own files: read as
            # that run read its data, its stored normalisation included.
            X, y, _, _, _ = load_own_inputs(input_path, checkpoint.extra, {}, require_labels=False)
        else:
            X, y = _read_input(input_path)
        description = f"{input_path} ({len(X)} samples)"
        if labels_path is not None:
            y = _read_labels(labels_path)
            if len(y) != len(X):
                raise DatasetError(
                    f"--labels {labels_path} has {len(y)} labels for {len(X)} samples in "
                    f"{input_path}"
                )
        if y is not None and (y < 0).any():
            y = None  # a workbook without labels marks them -1
    expected = tuple(getattr(model, "input_shape", X.shape[1:]))
    if tuple(X.shape[1:]) != expected:
        raise DatasetError(
            f"{input_path or 'the stored run'}: samples have shape {tuple(X.shape[1:])} but "
            f"{getattr(model, 'name', 'the model')} expects {expected}"
        )
    if y is not None and len(y) and int(y.max()) >= classes:
        source = labels_path or input_path or "the stored run"
        raise DatasetError(
            f"{source}: label {int(y.max())} is out of range for {classes} classes "
            f"(0 to {classes - 1})"
        )
    return Inspection(checkpoint, model, X, y, [str(n) for n in names], description)


def data_arguments(command: Any) -> Any:
    """CHECKPOINT [INPUT] plus --labels and --split."""
    options = [
        click.argument("checkpoint_path", metavar="CHECKPOINT", type=click.Path(path_type=Path)),
        click.argument("input_path", metavar="[INPUT]", required=False,
                       type=click.Path(path_type=Path)),
        click.option("--labels", "labels_path", type=click.Path(path_type=Path, dir_okay=False),
                     help="Labels for INPUT: an IDX label file or a .npy of integers."),
        click.option("--split", type=click.Choice(["train", "val", "all"]), default=None,
                     help="Without INPUT: which part of the checkpoint's own run."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


@click.command("inspect")
@data_arguments
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
def inspect_command(
    checkpoint_path: Path,
    input_path: Path | None,
    labels_path: Path | None,
    split: str | None,
    as_json: bool,
    batch_size: int,
) -> None:
    """Health report of a checkpoint: per-layer statistics, gradients, warnings.

    For each layer: the mean and spread of its output, its dead units (a ReLU output
    that is 0 for every sample) and saturated units (Sigmoid/Tanh stuck near a limit).
    For each parameter: its size, the gradient of the mean loss on the data, and how
    far the checkpoint's optimizer would move it in its next step. Without INPUT it
    uses the training split of the run that wrote the checkpoint.

    \b
    Examples:
      cnnx inspect runs/a/last.npz
      cnnx inspect runs/a/last.npz --split all
      cnnx inspect mnist.npz t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz
    """
    from cnnx.errors import CheckpointError
    from cnnx.inspect import health_report

    seen = open_for_inspection(checkpoint_path, input_path, labels_path, split or "train")
    optimizer = None
    if seen.y is not None:
        try:
            optimizer = seen.checkpoint.build_optimizer(seen.model)
        except CheckpointError:
            optimizer = None  # a checkpoint saved without its optimizer: no update ratios
    report = health_report(
        seen.model,
        seen.X,
        seen.y,
        optimizer=optimizer,
        class_names=seen.class_names,
        batch_size=batch_size,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    name = getattr(seen.model, "name", type(seen.model).__name__)
    epoch = seen.checkpoint.epoch
    click.echo(f"checkpoint  {checkpoint_path} ({name}" + (f", epoch {epoch})" if epoch else ")"))
    click.echo(f"data        {seen.description}")
    if seen.y is None:
        click.echo("            (no labels: no gradients)")
    click.echo("")
    click.echo(report.format())
