"""``cnnx evaluate`` and ``cnnx predict``: use a saved checkpoint."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from cnnx import runs
from cnnx.backends import device as resolve_device
from cnnx.checkpoint import Checkpoint, load_checkpoint
from cnnx.cli.data_flags import (
    file_data_options,
    is_own_data,
    load_own_inputs,
    read_images_like_run,
    sample_origin,
)
from cnnx.errors import CnnxError, DatasetError
from cnnx.metrics import confusion_matrix, format_report, plot_confusion
from cnnx.runs import RunSpec
from cnnx.train import evaluate as evaluate_model
from cnnx.train import predict_proba
from cnnx.utils.progress import Progress, Ticker


def class_names(dataset: str | None, num_classes: int) -> list[str]:
    """Display names of the classes for a dataset (indices when unknown)."""
    from cnnx import datasets

    known = {
        "digits6x6": list(datasets.DIGITS6X6_CLASSES),
        "patterns": list(datasets.PATTERN_CLASSES),
        "mnist": [str(d) for d in range(10)],
    }
    names = known.get(dataset or "")
    if names is None or len(names) != num_classes:
        return [str(k) for k in range(num_classes)]
    return names


def _open(path: Path) -> tuple[Checkpoint, Any, RunSpec | None]:
    """The checkpoint, its model, and the run it was saved by (None for a bare save)."""
    checkpoint = load_checkpoint(path)
    model = checkpoint.build_model()
    config = checkpoint.extra.get("config")
    if not isinstance(config, dict) or not {"dataset", "model"} <= set(config):
        return checkpoint, model, None  # saved by a script, not by a run: no run to read back
    spec = RunSpec.from_dict(config, source=f"{path} (its stored run configuration)")
    return checkpoint, model, spec


def _class_names(checkpoint: Checkpoint, dataset: str | None, num_classes: int) -> list[str]:
    stored = checkpoint.extra.get("class_names")
    if isinstance(stored, list) and len(stored) == num_classes:
        return [str(name) for name in stored]
    return class_names(dataset, num_classes)


@click.command()
@click.argument("checkpoint_path", metavar="CHECKPOINT", type=click.Path(path_type=Path))
@click.option(
    "--dataset",
    type=click.Choice(sorted(runs.SOURCES)),
    help="Dataset to evaluate on (default: the one the checkpoint was trained on).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Data to evaluate on, all of its samples by default: a 6×6 workbook, or an "
    "image folder, .csv, .npz or .npy file read as the checkpoint's run read its data.",
)
@file_data_options(normalize=False)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory holding the MNIST IDX files.",
)
@click.option(
    "--split",
    type=click.Choice(["val", "train", "all", "test"]),
    help="Which part: val/train as the training run split it (seed and fraction "
    "from the checkpoint), all samples, or MNIST's test split (default: val; "
    "test for mnist; all for --data).",
)
@click.option(
    "--device", "device_spec", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option(
    "--plot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also save the confusion matrix as a PNG (needs cnnx[plot]).",
)
def evaluate(
    checkpoint_path: Path,
    dataset: str | None,
    data: Path | None,
    data_dir: Path | None,
    split: str | None,
    device_spec: str,
    batch_size: int,
    plot: Path | None,
    **file_params: Any,
) -> None:
    """Loss, accuracy, per-class precision/recall and the confusion matrix of a checkpoint.

    \b
    Examples:
      cnnx evaluate runs/a/last.npz                   # its own validation split
      cnnx evaluate runs/a/best.npz --split all
      cnnx evaluate runs/a/last.npz --data class_b.xlsx
      cnnx evaluate runs/photos/best.npz --data more_photos/
      cnnx evaluate runs/mnist/last.npz --device cuda
    """
    dev = resolve_device(device_spec)
    checkpoint, model, saved = _open(checkpoint_path)
    if data is not None and is_own_data(data, saved.dataset if saved is not None else None):
        # New files of your own: read as the run read its data, with its stored
        # normalisation (not statistics of the new files).
        if split not in (None, "all"):
            raise click.UsageError(f"--split {split}: --data {data} is evaluated as a whole")
        X, y, description, notes, _ = load_own_inputs(
            data, checkpoint.extra, file_params, require_labels=True
        )
        for note in notes:
            click.echo(f"note: {note}", err=True)
        dataset, split = "files", "all"
        _report(checkpoint_path, checkpoint, model, X, y, description, split, dataset, dev,
                batch_size, plot)  # fmt: skip
        return
    if any(v is not None for v in file_params.values()):
        raise click.UsageError(
            "--format, --channels, --image-size, --label-column, --channels-last and "
            "--skip-bad apply to --data with an image folder, .csv, .npz or .npy file"
        )
    dataset = dataset or (saved.dataset if saved is not None else "digits6x6")
    if saved is not None and saved.dataset == dataset:
        spec = saved
    else:
        spec = runs.defaults(dataset)
        if saved is not None:
            spec = spec.replace(seed=saved.seed, val_fraction=saved.val_fraction)
    options = dict(spec.dataset_options)
    source = runs.get_source(dataset)
    if data is not None:
        if "path" not in source.options:
            raise click.UsageError(f"--data is a 6×6 workbook; {dataset} does not read one")
        options["path"] = str(data)
        options.pop("limit", None)
    if data_dir is not None:
        if "root" not in source.options:
            raise click.UsageError("--data-dir applies to --dataset mnist only")
        options["root"] = str(data_dir)
    spec = spec.replace(dataset_options=options)
    if split is None:
        split = "test" if dataset == "mnist" else ("all" if data is not None else "val")
    if split == "test" and source.load_test is None:
        raise click.UsageError("--split test is MNIST's test split; use val, train or all")
    if split == "all" and source.load_test is not None:
        raise click.UsageError("for mnist use --split test or --split train")
    if split == "val" and source.load_test is not None and not spec.val_fraction:
        split = "test"
    if split == "test":
        (X, y), description = runs.load_test(spec)
    else:
        loaded = runs.load_data(spec.replace(val_fraction=0.0) if split == "all" else spec)
        description = loaded.description
        if split in ("train", "all"):
            X, y = loaded.train
        else:
            if loaded.val is None:
                raise CnnxError("the checkpoint's run had no validation split; use --split all")
            X, y = loaded.val
    _report(checkpoint_path, checkpoint, model, X, y, description, split, dataset, dev,
            batch_size, plot)  # fmt: skip


def _report(
    checkpoint_path: Path, checkpoint: Checkpoint, model: Any, X: np.ndarray, y: np.ndarray,
    description: str, split: str, dataset: str, dev: Any, batch_size: int, plot: Path | None,
) -> None:  # fmt: skip
    """Evaluate ``model`` on ``(X, y)`` and print the report (``cnnx evaluate``)."""
    if tuple(X.shape[1:]) != tuple(model.input_shape):
        raise DatasetError(
            f"{dataset} samples have shape {tuple(X.shape[1:])} but {model.name} expects "
            f"{tuple(model.input_shape)}"
        )
    loss, accuracy, probs = evaluate_with_progress(model, X, y, dev, batch_size)
    names = _class_names(checkpoint, dataset, model.num_classes)
    matrix = confusion_matrix(y, probs.argmax(axis=1), model.num_classes)
    epoch = f", epoch {checkpoint.epoch}" if checkpoint.epoch is not None else ""
    click.echo(f"checkpoint  {checkpoint_path} ({model.name}{epoch})")
    click.echo(f"data        {description}, {split} split: {len(y)} samples")
    click.echo(f"device      {dev}")
    click.echo(f"loss        {loss:.4f}")
    click.echo(f"accuracy    {accuracy:.4f}")
    click.echo("")
    click.echo(format_report(matrix, names))
    if plot is not None:
        try:
            plot_confusion(matrix, names, str(plot))
        except ImportError:
            click.echo('note: --plot needs matplotlib: pip install "cnnx[plot]"; skipped', err=True)
        else:
            click.echo(f"\nconfusion matrix saved to {plot}")


def evaluate_with_progress(
    model: Any, X: np.ndarray, y: np.ndarray, dev: Any, batch_size: int, interval: float = 10.0
) -> tuple[float, float, np.ndarray]:
    """Loss, accuracy and class probabilities ``(N, classes) float32`` of ``model`` on
    ``(X, y)``, a chunk of ``batch_size`` samples at a time, showing progress: a bar on a
    terminal, else a plain line every ``interval`` seconds."""
    n = len(y)
    bar = Progress(n, "evaluate", "samples")
    ticker = Ticker(interval)
    loss_sum, correct, parts = 0.0, 0, []
    try:
        for start in range(0, n, batch_size):
            part = slice(start, start + batch_size)
            result = evaluate_model(model, X[part], y[part], device=dev, batch_size=batch_size)
            count = len(y[part])
            loss_sum += result.loss * count
            correct += round(result.accuracy * count)
            parts.append(predict_proba(model, X[part], device=dev, batch_size=batch_size))
            bar.update(count)
            if not bar.enabled and ticker.due() and start + count < n:
                done = start + count
                click.echo(f"evaluate: {done:,}/{n:,} samples ({100 * done / n:.0f}%)", err=True)
    finally:
        bar.close()
    return loss_sum / n, correct / n, np.concatenate(parts, axis=0)


def load_inputs(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read samples: a 6×6 workbook, an IDX image file, a ``.npy`` array, or an ``.npz``
    with arrays ``X`` (and optionally ``y``).

    Returns ``(X, labels)``: X ``(N, C, H, W) float32``; labels where the file has them.
    """
    from cnnx import datasets

    name = path.name.lower()
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if name.endswith(".npz"):
        return _load_npz(path)
    if name.endswith((".xlsx", ".xlsm")):
        X, y = datasets.load_digits6x6(path, require_labels=False)
        return X, (y if (y >= 0).any() else None)
    if name.endswith(".npy"):
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DatasetError(f"{path}: not a readable .npy array ({exc})") from None
        if array.dtype.kind not in "biuf":
            raise DatasetError(f"{path}: holds {array.dtype} values, expected numbers")
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4:
            raise DatasetError(
                f"{path}: array of shape {array.shape}; expected (N, C, H, W) or (C, H, W)"
            )
        if array.dtype == np.uint8:
            return (array / np.float32(255)).astype(np.float32), None
        return array.astype(np.float32), None
    images = datasets.read_idx(path)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise DatasetError(f"{path}: IDX array of shape {images.shape}; expected images (N, H, W)")
    scale = np.float32(255) if images.dtype == np.uint8 else np.float32(1)
    return (images / scale).astype(np.float32), None


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """An ``.npz`` with ``X`` ``(N, C, H, W)`` and optionally integer labels ``y``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "X" not in archive:
                raise DatasetError(f"{path}: expected arrays 'X' (and optionally 'y') inside")
            X = archive["X"]
            y = archive["y"] if "y" in archive else None
    except DatasetError:
        raise
    except Exception as exc:  # not a zip (numpy then suspects a pickle), object arrays
        raise DatasetError(
            f"{path}: not a readable .npz archive of numeric arrays 'X' and 'y' "
            f"({type(exc).__name__})"
        ) from None
    if X.dtype.kind not in "uif" or X.ndim < 2:
        raise DatasetError(
            f"{path}: 'X' must be a numeric array of samples (N, C, H, W), got shape "
            f"{X.shape} dtype {X.dtype}"
        )
    if y is not None and (y.dtype.kind not in "iu" or y.shape != (len(X),)):
        raise DatasetError(
            f"{path}: 'y' must be {len(X)} integer labels, one per sample of 'X'; got "
            f"shape {y.shape} dtype {y.dtype}"
        )
    if X.dtype == np.uint8:
        X = X / np.float32(255)
    return X.astype(np.float32), None if y is None else y.astype(np.int64)


def check_inputs(path: Path, X: np.ndarray) -> None:
    """Refuse inputs no prediction can be made from: no samples, or NaN/infinite values.

    Raises:
        DatasetError: naming the file and the first bad sample.
    """
    if X.shape[0] == 0 or X.size == 0:
        raise DatasetError(f"{path}: holds no samples (array of shape {X.shape})")
    finite = np.isfinite(X).reshape(X.shape[0], -1).all(axis=1)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise DatasetError(
            f"{path}: {int((~finite).sum())} of {X.shape[0]} samples hold NaN or infinite "
            f"values (the first is sample {first}); predictions need finite inputs"
        )


@click.command()
@click.argument("checkpoint_path", metavar="CHECKPOINT", type=click.Path(path_type=Path))
@click.argument(
    "input_paths", metavar="INPUT...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--device", "device_spec", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option(
    "--show-input",
    is_flag=True,
    help="Save the prepared image files, as the network saw them, to -o (needs cnnx[plot]).",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="PNG for --show-input."
)
@file_data_options(normalize=False, format_flag="--input-format")
def predict(
    checkpoint_path: Path,
    input_paths: tuple[Path, ...],
    fmt: str,
    device_spec: str,
    batch_size: int,
    show_input: bool,
    output: Path | None,
    **file_params: Any,
) -> None:
    """Class and probabilities for each sample of INPUT.

    INPUT is a workbook in the 6×6 layout (labels optional), an IDX image file
    (e.g. t10k-images-idx3-ubyte.gz), or a .npy array of shape (N, C, H, W) or
    (C, H, W) (uint8 values are divided by 255); or your own data: an image folder
    (class folders optional), a .csv (a label column optional, e.g. Kaggle's
    test.csv) or an .npz with arrays X (and labels y), read as the checkpoint's run
    read its data; or any number of ordinary image files (PNG, JPEG, ...; needs
    cnnx[images]). For a model trained on your own files (--data) they are read as
    its data was (channels, size, normalisation); for the others they are prepared
    the way MNIST was made: greyscale, dark ink on light paper inverted, cropped to
    the ink, scaled to fit 20×20 (6×6 for the 6×6 models) keeping the aspect ratio,
    centred by centre of mass in 28×28.

    \b
    Examples:
      cnnx predict runs/a/last.npz my_digits.xlsx
      cnnx predict runs/mnist/last.npz images.npy --format json
      cnnx predict runs/kaggle/best.npz test.csv --format csv
      cnnx predict runs/mnist/last.npz photo.png more.jpg --show-input -o prep.png
    """
    from cnnx.inspect.images import is_image_file, prepare_images

    if show_input != (output is not None):
        raise click.UsageError("--show-input and -o PNG go together")
    dev = resolve_device(device_spec)
    checkpoint, model, saved = _open(checkpoint_path)
    images = [p for p in input_paths if is_image_file(p)]
    if images and len(images) != len(input_paths):
        raise click.UsageError(
            "give image files, or one data file (workbook, IDX, .npy, .npz), not both"
        )
    if not images and len(input_paths) > 1:
        raise click.UsageError("give one data file (workbook, IDX, .npy, .npz), or any image files")
    if show_input and not images:
        raise click.UsageError("--show-input shows prepared image files; INPUT has none")
    if show_input:
        from cnnx.inspect.plots import figure

        figure()  # without matplotlib, fail now, naming the extra
    input_path = input_paths[0]
    dataset = saved.dataset if saved is not None else None
    origin: tuple[str, list[Any]] | None = None  # a column naming where each sample came from
    if images and dataset == "files":
        X, labels = read_images_like_run(images, checkpoint.extra), None
        origin = ("file", [str(p) for p in images])
    elif images:
        X, labels = prepare_images(images, tuple(model.input_shape)), None
        origin = ("file", [str(p) for p in images])
    elif is_own_data(input_path, dataset):
        X, labels, _, notes, sample_names = load_own_inputs(
            input_path, checkpoint.extra, file_params, require_labels=False
        )
        for note in notes:
            click.echo(f"note: {note}", err=True)
        if sample_names is not None:
            origin = sample_origin(sample_names)
    else:
        X, labels = load_inputs(input_path)
    check_inputs(input_path, X)
    if tuple(X.shape[1:]) != tuple(model.input_shape):
        raise DatasetError(
            f"{input_path}: samples have shape {tuple(X.shape[1:])} but {model.name} "
            f"expects {tuple(model.input_shape)}"
        )
    probs = predict_proba(model, X, device=dev, batch_size=batch_size)
    names = _class_names(checkpoint, None if saved is None else saved.dataset, model.num_classes)
    predicted = probs.argmax(axis=1)
    rows = []
    for i in range(len(X)):
        row: dict[str, Any] = {"sample": i}
        if origin is not None:
            row[origin[0]] = origin[1][i]
        row["predicted"] = names[predicted[i]]
        if labels is not None:
            row["label"] = names[labels[i]] if labels[i] >= 0 else None
        for k, name in enumerate(names):
            row[f"p_{name}"] = float(probs[i, k])
        rows.append(row)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        header = list(rows[0])
        widths = {h: max(len(h), 7) for h in header}
        click.echo("  ".join(f"{h:>{widths[h]}}" for h in header))
        for row in rows:
            cells = []
            for h in header:
                value = row[h]
                text = (
                    f"{value:.4f}"
                    if isinstance(value, float)
                    else ("-" if value is None else str(value))
                )
                cells.append(f"{text:>{widths[h]}}")
            click.echo("  ".join(cells))
        if labels is not None and (labels >= 0).any():
            known = labels >= 0
            accuracy = float((predicted[known] == labels[known]).mean())
            click.echo(f"\naccuracy on the {int(known.sum())} labelled samples: {accuracy:.4f}")
    if show_input and output is not None:
        from cnnx.inspect.plots import plot_inputs

        titles = [
            f"{Path(p).name}\n→ {names[k]} ({probs[i, k]:.2f})"
            for i, (p, k) in enumerate(zip(images, predicted, strict=True))
        ]
        click.echo(f"wrote {plot_inputs(X, titles, output)}", err=fmt != "table")
