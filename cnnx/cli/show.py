"""``cnnx show``: pictures of a checkpoint or a run (needs the ``plot`` extra)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from cnnx.cli.inspect import data_arguments, open_for_inspection

OUTPUT = click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="PNG file to write.",
)


@click.group()
def show() -> None:
    """Draw a checkpoint's kernels, feature maps, mistakes, or a run's curves (PNG).

    \b
    Examples:
      cnnx show filters runs/a/last.npz -o filters.png
      cnnx show maps runs/a/last.npz --sample 0 -o maps.png
      cnnx show curves runs/a -o curves.png
      cnnx show errors runs/a/last.npz -o errors.png
      cnnx show confusion runs/a/last.npz -o confusion.png
    """


def _done(path: Path) -> None:
    click.echo(f"wrote {path}")


@show.command()
@click.argument("checkpoint_path", metavar="CHECKPOINT", type=click.Path(path_type=Path))
@OUTPUT
def filters(checkpoint_path: Path, output: Path) -> None:
    """Every convolution's kernels as a grid, on one labelled colour scale."""
    from cnnx.checkpoint import load_checkpoint
    from cnnx.inspect import plots

    plots.figure()  # fails early, naming the extra, before any work
    _done(plots.plot_filters(load_checkpoint(checkpoint_path).build_model(), output))


@show.command()
@data_arguments
@click.option("--sample", type=click.IntRange(min=0), default=0, show_default=True)
@OUTPUT
def maps(
    checkpoint_path: Path,
    input_path: Path | None,
    labels_path: Path | None,
    split: str | None,
    sample: int,
    output: Path,
) -> None:
    """The input and every layer's feature maps for one sample."""
    from cnnx.inspect import plots

    plots.figure()
    seen = open_for_inspection(checkpoint_path, input_path, labels_path, split or "val")
    if sample >= len(seen.X):
        raise click.UsageError(f"--sample {sample}: {seen.description} has {len(seen.X)} samples")
    title = f"sample {sample} of {seen.description}"
    if seen.y is not None:
        title += f", label {seen.class_names[int(seen.y[sample])]}"
    _done(plots.plot_maps(seen.model, seen.X[sample], output, title, seen.class_names))


@show.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@OUTPUT
def curves(run_dir: Path, output: Path) -> None:
    """Loss and accuracy per epoch (train and validation) from a run's metrics.jsonl."""
    from cnnx.inspect import plots

    plots.figure()
    _done(plots.plot_curves(run_dir, output))


def _predictions(checkpoint_path, input_path, labels_path, split):
    from cnnx.errors import CnnxError
    from cnnx.train import predict_proba

    seen = open_for_inspection(checkpoint_path, input_path, labels_path, split or "val")
    if seen.y is None:
        raise CnnxError(f"{seen.description} has no labels; give --labels")
    return seen, predict_proba(seen.model, seen.X)


@show.command()
@data_arguments
@click.option("--limit", type=click.IntRange(min=1), default=48, show_default=True,
              help="Draw at most this many (most confident mistakes first).")  # fmt: skip
@OUTPUT
def errors(
    checkpoint_path: Path,
    input_path: Path | None,
    labels_path: Path | None,
    split: str | None,
    limit: int,
    output: Path,
) -> None:
    """The misclassified samples with their true and predicted class and confidence."""
    from cnnx.inspect import plots

    plots.figure()
    seen, probs = _predictions(checkpoint_path, input_path, labels_path, split)
    path, count = plots.plot_errors(seen.X, seen.y, probs, seen.class_names, output, limit)
    click.echo(f"{count} of {len(seen.y)} samples misclassified ({seen.description})")
    _done(path)


@show.command()
@data_arguments
@OUTPUT
def confusion(
    checkpoint_path: Path,
    input_path: Path | None,
    labels_path: Path | None,
    split: str | None,
    output: Path,
) -> None:
    """The confusion matrix (rows: true class, columns: predicted)."""
    from cnnx.inspect import plots
    from cnnx.metrics import confusion_matrix

    plots.figure()
    seen, probs = _predictions(checkpoint_path, input_path, labels_path, split)
    matrix = confusion_matrix(seen.y, probs.argmax(axis=1), len(seen.class_names))
    right, total = int(np.trace(matrix)), int(matrix.sum())
    summary = f"{right} of {total} samples right ({seen.description})"
    click.echo(summary)
    title = f"{checkpoint_path.name}: {summary}"
    _done(plots.plot_confusion(matrix, seen.class_names, output, title))
