"""``cnnx summary``: layers, output shapes and parameter counts of a model."""

from __future__ import annotations

from pathlib import Path

import click

from cnnx import models


@click.command()
@click.argument("model_name", metavar="MODEL", required=False)
@click.option("--list", "list_models", is_flag=True, help="List the models cnnx can build.")
def summary(model_name: str | None, list_models: bool) -> None:
    """Print each layer of MODEL, its output shape and parameter count, and the total.

    MODEL is a registered name (simple, enhanced, mnist_cnn, lenet5, mlp,
    toy_convnet) or a checkpoint file. Counts come from the parameters themselves.

    \b
    Examples:
      cnnx summary simple
      cnnx summary runs/a/last.npz
      cnnx summary --list
    """
    if list_models or model_name is None:
        if not list_models:
            raise click.UsageError("give a MODEL, or --list to see the choices")
        for info in models.available():
            aliases = f" (also: {', '.join(info.aliases)})" if info.aliases else ""
            click.echo(f"{info.name}{aliases}\n    {info.description}")
        return
    known = {name for info in models.available() for name in (info.name, *info.aliases)}
    as_path = Path(model_name)
    # A run directory given by mistake gets load_checkpoint's "is a directory" hint.
    if (
        model_name.endswith(".npz")
        or as_path.is_file()
        or (as_path.is_dir() and model_name not in known)
    ):
        from cnnx.checkpoint import load_checkpoint

        model = load_checkpoint(model_name).build_model()
    else:
        model = models.get(model_name)
    click.echo(model.summary())
