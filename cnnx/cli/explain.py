"""``cnnx explain``: one sample's trip forward and backward, in the slides' notation."""

from __future__ import annotations

from pathlib import Path

import click

from cnnx.cli.inspect import open_for_inspection


@click.command()
@click.argument(
    "checkpoint_path", metavar="[CHECKPOINT]", required=False, type=click.Path(path_type=Path)
)
@click.argument("input_path", metavar="[INPUT]", required=False, type=click.Path(path_type=Path))
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Labels for INPUT: an IDX label file or a .npy of integers.",
)
@click.option(
    "--split",
    type=click.Choice(["train", "val", "all"]),
    default="val",
    show_default=True,
    help="Without INPUT: which part of the checkpoint's own run.",
)
@click.option("--sample", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--label",
    type=click.IntRange(min=0),
    help="The true class to explain the loss against (default: the sample's label).",
)
@click.option("--lr", type=float, help="Also show one SGD step with this learning rate.")
@click.option(
    "--worked-example",
    is_flag=True,
    help="Replay the lecture slides' example: 4×4 input, 3×3 filter, one SGD step at lr 0.1.",
)
def explain(
    checkpoint_path: Path | None,
    input_path: Path | None,
    labels_path: Path | None,
    split: str,
    sample: int,
    label: int | None,
    lr: float | None,
    worked_example: bool,
) -> None:
    """One sample's forward and backward pass, as numbered steps.

    Input patch × kernel = value, pooled maximum, logits, softmax, loss, then each
    gradient back to the first kernel. Small layers are printed in full, large ones
    summarised. Without INPUT the sample comes from the checkpoint's own run
    (its validation split unless --split says otherwise).

    \b
    Examples:
      cnnx explain --worked-example
      cnnx explain runs/a/last.npz --sample 3
      cnnx explain runs/a/last.npz my_digits.xlsx --sample 0 --lr 0.1
    """
    from cnnx.inspect.explain import explain_sample
    from cnnx.inspect.explain import worked_example as replay

    if worked_example:
        if checkpoint_path is not None:
            raise click.UsageError("--worked-example takes no CHECKPOINT")
        click.echo("The lecture slides' worked example (research text 001, section 5):")
        click.echo("Conv 3×3 (bias 1) → ReLU → MaxPool 2×2 → Flatten → Dense 1→2 (W [0.5, −0.5],")
        click.echo("b [0.1, 0.2]) → softmax cross-entropy against class 0 → SGD, lr 0.1.\n")
        click.echo(replay().text)
        return
    if checkpoint_path is None:
        raise click.UsageError("give a CHECKPOINT, or --worked-example")
    seen = open_for_inspection(checkpoint_path, input_path, labels_path, split)
    if sample >= len(seen.X):
        raise click.UsageError(
            f"--sample {sample} is out of range: {seen.description} has {len(seen.X)} samples"
        )
    if label is None and seen.y is not None:
        label = int(seen.y[sample])
    if label is not None and label >= len(seen.class_names):
        raise click.UsageError(f"--label {label}: the model has {len(seen.class_names)} classes")
    click.echo(f"sample {sample} of {seen.description}")
    if label is not None:
        click.echo(f"label  {label} ({seen.class_names[label]!r})")
    else:
        click.echo("label  unknown: forward pass only (give --label for the backward pass)")
    click.echo("")
    result = explain_sample(seen.model, seen.X[sample], label, class_names=seen.class_names, lr=lr)
    click.echo(result.text)
