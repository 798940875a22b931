"""``cnnx tune``: search hyperparameters of a run with Optuna.

The run is defined exactly as ``cnnx train`` defines it (the same flags, or
``--config``); ``--param`` flags name what is searched. This module only parses flags
and prints; :func:`cnnx.tune.tune` does the work.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from cnnx import runs
from cnnx.cli.train import chosen_dataset, explicit, spec_from_flags
from cnnx.cli.train import train as train_command
from cnnx.experiment.cluster import ClusterSpec, connect
from cnnx.experiment.grid import parse_seeds

#: ``cnnx train`` flags that make no sense for a search (it has --seeds, --output-dir of
#: its own, and keeps no run directories).
TRAIN_FLAGS_LEFT_OUT = {"seed", "output_dir", "overwrite", "save_every", "resume", "quiet"}
DEFAULT_TRIALS = 20


def _list_presets() -> None:
    from cnnx.tune import PRESETS, preset

    for name in PRESETS:
        found = preset(name)
        click.echo(f"{name:<16} {found.description}")


def _base_spec(ctx: click.Context, params: dict[str, Any], preset: Any) -> runs.RunSpec:
    """The run every trial starts from: a preset's, --config's or the dataset's defaults,
    with the ``cnnx train`` flags given applied."""
    config_file: Path | None = params["config"]
    if preset is not None and config_file is not None:
        raise click.UsageError("a preset defines the run; drop --config")
    if config_file is not None:
        base = runs.RunSpec.from_dict(runs.read_config_file(config_file), source=str(config_file))
        device = params["device_spec"] if explicit(ctx, "device_spec") else base.device
    elif preset is not None:
        base = runs.defaults(preset.base["dataset"]).replace(**preset.base)
        device = params["device_spec"]
    else:
        # --data with an image folder, .csv, .npz or .npy starts from the files defaults.
        base = runs.defaults(chosen_dataset(ctx, params) or params["dataset"])
        device = params["device_spec"]
    if preset is not None and not explicit(ctx, "dataset"):
        params = {**params, "dataset": base.dataset}
    return spec_from_flags(ctx, base, params, device)


@click.command()
@click.argument("preset_name", required=False, metavar="[PRESET]")
@click.option("--list", "list_only", is_flag=True, help="List the search presets and exit.")
@click.option(
    "--param",
    "space",
    multiple=True,
    metavar="NAME=KIND:ARGS",
    help="A searched parameter (repeat): lr=loguniform:1e-4:1e-1, beta1=uniform:0.5:0.99, "
    "hidden=int:32:256, batch_size=logint:16:256, optimizer=choice:adam,rmsprop,sgd.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    help=f"Trials this process runs (default {DEFAULT_TRIALS}, or the preset's).",
)
@click.option(
    "--seeds",
    help="Seeds each trial trains with; its value is the mean validation accuracy (default 0).",
)
@click.option(
    "--sampler",
    type=click.Choice(["random", "tpe"]),
    default="random",
    show_default=True,
    help="random: random search (log scales for loguniform), as notes 004 recommend; "
    "tpe: Optuna's TPE.",
)
@click.option("--sampler-seed", type=int, default=0, show_default=True, help="Seeds the sampler.")
@click.option(
    "--prune",
    is_flag=True,
    help="Stop unpromising trials early (Optuna's median pruner on per-epoch validation accuracy).",
)
@click.option(
    "--storage",
    metavar="URL",
    help="Optuna storage, e.g. sqlite:///study.db: keeps the study, and lets several "
    "cnnx tune processes share it.",
)
@click.option("--study-name", help="The study's name in --storage (default cnnx-tune).")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Trials at a time, in worker processes (one BLAS thread each).",
)
@click.option(
    "--dask",
    metavar="local:N|tcp://HOST:PORT",
    help="Run trials on a Dask cluster (docs/cluster.md). Needs the cluster extra.",
)
@click.option(
    "--dask-scheduler-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Run trials on the Dask cluster whose scheduler wrote this file.",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write trials.csv, best.json, summary.md and the figures here.",
)
@click.option("--overwrite", is_flag=True, help="Replace the results in a non-empty --output-dir.")
@click.option("--no-plots", is_flag=True, help="Do not draw the figures.")
@click.option("--quiet", "-q", is_flag=True, help="No line per trial.")
@click.pass_context
def tune(ctx: click.Context, preset_name: str | None, **params: Any) -> None:
    """Search hyperparameters of a run (Optuna), then retrain the best with cnnx train.

    Every `cnnx train` flag (--dataset, --model, --optimizer, --lr, --epochs, --config,
    …) fixes the run; --param flags say what is searched. Each trial trains once per
    seed of --seeds; its value is the mean final validation accuracy (ties: the lower
    validation loss wins). best.json in --output-dir is the best trial's run:
    `cnnx train --config best.json` retrains it.

    \b
    Examples:
      cnnx tune --list
      cnnx tune --param lr=loguniform:1e-4:1e-1 --epochs 100 --trials 30 --output-dir t
      cnnx tune --dataset mnist --model mlp --param lr=loguniform:1e-4:1e-1 \\
          --param optimizer=choice:adam,rmsprop,sgd --train-limit 5000 --output-dir m
      cnnx tune textbook-mnist --output-dir textbook     # notes 004's random search
      cnnx tune ... --storage sqlite:///study.db --study-name s1    # in two shells
      cnnx train --config t/best.json                    # retrain the best trial
    """
    from cnnx.tune import SearchSpace, preset, tune

    if params["list_only"]:
        _list_presets()
        return
    found = None
    if preset_name is not None:
        try:
            found = preset(preset_name)
        except ValueError as exc:
            raise click.UsageError(f"{exc} (cnnx tune --list)") from None
    texts = params["space"] or (found.params if found is not None else ())
    if not texts:
        raise click.UsageError(
            "nothing to search: give --param NAME=KIND:ARGS (e.g. lr=loguniform:1e-4:1e-1) "
            "or a preset (cnnx tune --list)"
        )
    space = SearchSpace.parse(texts)
    seeds: tuple[int, ...] = found.seeds if found is not None else (0,)
    if params["seeds"] is not None:
        try:
            seeds = parse_seeds(params["seeds"])
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    trials = params["trials"] or (found.trials if found is not None else DEFAULT_TRIALS)
    base = _base_spec(ctx, params, found)
    cluster = ClusterSpec.parse(params["dask"], params["dask_scheduler_file"])
    if cluster is not None and explicit(ctx, "jobs"):
        raise click.UsageError("--jobs runs worker processes here; with --dask, drop it")

    def say(line: str) -> None:
        click.echo(line, err=True)

    executor = None
    if cluster is not None:
        executor = connect(cluster, device=base.device, log=say)
    # Leaving with an error (Ctrl-C included) cancels the cluster's pending trials.
    with executor if executor is not None else contextlib.nullcontext():
        result = tune(
            base,
            space,
            trials=trials,
            seeds=seeds,
            sampler=params["sampler"],
            sampler_seed=params["sampler_seed"],
            prune=params["prune"],
            storage=params["storage"],
            study_name=params["study_name"],
            jobs=params["jobs"],
            executor=executor,
            output_dir=params["output_dir"],
            overwrite=params["overwrite"],
            plots=not params["no_plots"],
            quiet=params["quiet"],
            log=say,
        )
    click.echo(result.summary, nl=False)
    if result.files:
        written = ", ".join(p.name for p in result.files)
        say(f"wrote {written} in {result.output_dir} ({result.elapsed:.1f} s)")


tune.params.extend(p for p in train_command.params if p.name not in TRAIN_FLAGS_LEFT_OUT)
