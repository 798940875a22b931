"""``cnnx experiment``: run a preset or a grid of configurations × seeds into tables and figures."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from cnnx import runs
from cnnx.cli.data_flags import file_data_options, file_flags_given, file_options, is_workbook
from cnnx.cli.options import OPTIMIZER_FLAGS
from cnnx.experiment.cluster import ClusterSpec, connect
from cnnx.experiment.grid import (
    DATASET_OPTIONS,
    PRESETS,
    Experiment,
    RunConfig,
    grid,
    parse_seeds,
    preset,
)
from cnnx.experiment.store import EXPERIMENT_FILE
from cnnx.optim import OPTIMIZERS
from cnnx.runs.signals import EXIT_TERMINATED, Terminated, terminate_raises
from cnnx.runs.spec import HYPERPARAMETER_ORDER

HYPER_FLAGS = HYPERPARAMETER_ORDER  # one flag per optimizer hyperparameter
# Flags that describe a grid; a preset fixes them, so they cannot be combined with one.
GRID_FLAGS = ("models", "model_option", "optimizers", "dataset", *HYPER_FLAGS)


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.05"`` -> 0.05, ``"none"`` -> None, anything else stays a string."""
    text = text.strip()
    if text.lower() in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_assignments(flag: str, items: tuple[str, ...], *, many: bool) -> dict[str, Any]:
    """Parse ``NAME=VALUE`` (or ``NAME=V1,V2`` when ``many``) flag values into a dict."""
    parsed: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not value.strip():
            example = "kernel_size=3,5,7" if many else "noise=0.05"
            raise click.UsageError(f"{flag} {item!r}: expected NAME=VALUE, e.g. {example}")
        if name in parsed:
            raise click.UsageError(f"{flag} {name} is given twice")
        values = [parse_value(v) for v in value.split(",")] if many else parse_value(value)
        parsed[name] = values
    return parsed


def parse_batch_size(text: str) -> int | None:
    if text.strip().lower() == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise click.UsageError(f"--batch-size {text!r}: expected a positive integer or 'full'")
    return value


def _given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def dataset_options(params: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The dataset options from --data, --data-dir, --train-limit and --dataset-option."""
    options = parse_assignments("--dataset-option", params["dataset_option"], many=False)
    if dataset != "files" and file_flags_given(params):
        raise click.UsageError(
            f"{', '.join(file_flags_given(params))} apply to your own data files "
            f"(--data PATH), not to --dataset {dataset}"
        )
    if dataset == "files":
        if params["data"] is None:
            raise click.UsageError(
                "--dataset files needs --data PATH (a folder, .csv, .npz or .npy)"
            )
        options.update(file_options(params))
    if params["data"] is not None:
        if dataset not in ("digits6x6", "files"):
            raise click.UsageError(
                "--data is a 6×6 workbook or your own image folder, .csv, .npz or .npy "
                f"file; it does not apply to {dataset}"
            )
        options["path"] = str(params["data"])
    if params["data_dir"] is not None:
        if dataset != "mnist":
            raise click.UsageError("--data-dir applies to --dataset mnist only")
        options["root"] = str(params["data_dir"])
    if params["train_limit"] is not None:
        options["limit"] = params["train_limit"]
    for name in options:
        if name not in DATASET_OPTIONS[dataset]:
            raise click.UsageError(
                f"--dataset-option {name}: {dataset} takes "
                f"{', '.join(DATASET_OPTIONS[dataset]) or 'no options'}"
            )
    return options


def own_dataset(params: dict[str, Any]) -> str | None:
    """``"files"`` when --data names your own data (not a workbook) or own-data flags are
    given, else None."""
    data = params["data"]
    if (data is not None and not is_workbook(data)) or file_flags_given(params):
        return "files"
    return None


def custom_grid(params: dict[str, Any]) -> list[RunConfig]:
    """The configurations described by the grid flags, with ``cnnx train``'s defaults."""
    dataset = params["dataset"] or own_dataset(params) or "digits6x6"
    defaults = runs.defaults(dataset)
    optimizers = list(params["optimizers"]) or [defaults.optimizer]
    hyper = {k: list(params[k]) for k in HYPER_FLAGS if params[k]}
    for flag in hyper:
        owners = OPTIMIZER_FLAGS.get(flag)
        if owners is not None and not any(o in owners for o in optimizers):
            raise click.UsageError(
                f"--{flag.replace('_', '-')} applies to {', '.join(owners)}, "
                f"not to {', '.join(optimizers)}"
            )
    if not params["optimizers"]:
        # As in `cnnx train`: the dataset's own hyperparameters go with its default optimizer.
        for key, value in defaults.hyperparameters.items():
            hyper.setdefault(key, [value])
    hyper.setdefault("lr", [defaults.hyperparameters["lr"]])
    batches = [parse_batch_size(b) for b in params["batch_size"]] or [defaults.batch_size]
    return grid(
        models=list(params["models"]) or [defaults.model],
        optimizers=optimizers,
        hyperparameters=hyper,
        model_options=parse_assignments("--model-option", params["model_option"], many=True),
        epochs=list(params["epochs"]) or [defaults.epochs],
        batch_sizes=batches,
        dataset=dataset,
        dataset_options=dataset_options(params, dataset),
        val_fraction=0.2 if params["val_fraction"] is None else params["val_fraction"],
    )


def preset_with_overrides(ctx: click.Context, name: str, params: dict[str, Any]) -> Experiment:
    """A preset, with --epochs/--batch-size/--val-fraction/--data/--dataset-option applied."""
    clashing = [f for f in GRID_FLAGS if _given(ctx, f)]
    if clashing:
        flags = ", ".join("--" + f.rstrip("s").replace("_", "-") for f in clashing)
        raise click.UsageError(
            f"preset {name} fixes its models, optimizers and data; {flags} cannot change it. "
            "Describe your own grid without a preset name instead."
        )
    experiment = preset(name)
    changes: dict[str, Any] = {}
    if len(params["epochs"]) > 1 or len(params["batch_size"]) > 1:
        raise click.UsageError("with a preset, --epochs and --batch-size take one value each")
    if params["epochs"]:
        changes["epochs"] = params["epochs"][0]
    if params["batch_size"]:
        changes["batch_size"] = parse_batch_size(params["batch_size"][0])
    if params["val_fraction"] is not None:
        changes["val_fraction"] = params["val_fraction"]
    datasets = {c.dataset for c in experiment.configs}
    options = dataset_options(params, datasets.pop()) if len(datasets) == 1 else {}
    if options:
        changes["dataset_options"] = options
    if not changes:
        return experiment
    # The preset's paragraph names its own epochs, batch size, ...; say what was changed,
    # so summary.md does not claim "500 epochs" over a 5-epoch table.
    changed = "; ".join(f"{key} {value}" for key, value in changes.items())
    note = f"Changed on the command line: {changed}."
    description = f"{experiment.description} {note}".strip()
    return experiment.replace(**changes, description=description)


def saved_experiment(output_dir: Path) -> Experiment:
    """The experiment recorded in ``output_dir/experiment.json`` (for a bare --resume)."""
    path = output_dir / EXPERIMENT_FILE
    if not path.is_file():
        raise click.UsageError(
            f"--resume: {path} does not exist; give the preset or grid flags of the experiment"
        )
    data = runs.read_config_file(path)
    where = f"--resume: {path}"
    if not isinstance(data, dict):
        raise click.UsageError(f"{where}: expected a JSON object describing the experiment")
    for key, kind, text in (("name", str, "a string"), ("configs", list, "a list"),
                            ("seeds", list, "a list of seeds")):  # fmt: skip
        if not isinstance(data.get(key), kind):
            raise click.UsageError(f"{where}: field {key!r} must be {text}, got {data.get(key)!r}")
    configs = []
    for index, item in enumerate(data["configs"]):
        try:
            configs.append(RunConfig.from_dict(item))
        except (ValueError, KeyError, TypeError) as exc:
            raise click.UsageError(f"{where}: configs[{index}]: {exc}") from None
    try:
        return Experiment(
            data["name"], tuple(configs), tuple(data["seeds"]), str(data.get("description", ""))
        )
    except (ValueError, TypeError) as exc:
        raise click.UsageError(f"{where}: {exc}") from None


def list_presets() -> None:
    for name in PRESETS:
        experiment = preset(name)
        click.echo(
            f"{name:<14} {len(experiment.configs)} configurations × {len(experiment.seeds)} "
            f"seeds: {experiment.description}"
        )


def _float_flag(name: str, text: str) -> Any:
    return click.option(f"--{name}", multiple=True, type=float, help=text)


@click.command()
@click.argument("preset_name", required=False, metavar="[PRESET]")
@click.option("--list", "list_only", is_flag=True, help="List the presets and exit.")
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Model name (repeat for a grid): simple, enhanced, toy_convnet, mnist_cnn, …",
)
@click.option(
    "--model-option",
    multiple=True,
    metavar="NAME=V1,V2",
    help="A model argument and its values, a grid axis (e.g. kernel_size=3,5,7,9).",
)
@click.option(
    "--optimizer",
    "optimizers",
    multiple=True,
    type=click.Choice(sorted(OPTIMIZERS)),
    help="Update rule (repeat for a grid; default: the dataset's, as in cnnx train).",
)
@_float_flag("lr", "Learning rate (repeat for a grid).")
@_float_flag("momentum", "Momentum μ (momentum, nesterov; repeatable).")
@_float_flag("rho", "RMSprop's ρ (repeatable).")
@_float_flag("beta1", "Adam's β1 (repeatable).")
@_float_flag("beta2", "Adam's β2 (repeatable).")
@_float_flag("eps", "ε of adagrad, rmsprop, adam (repeatable).")
@_float_flag("weight-decay", "L2 coefficient (repeatable).")
@click.option(
    "--dataset",
    type=click.Choice(sorted(DATASET_OPTIONS)),
    help="What to train on (default digits6x6).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Your own data: an image folder, .csv, .npz or .npy file (dataset files), or a "
    "6×6 workbook (digits6x6 grids and presets).",
)
@file_data_options()
@click.option(
    "--data-dir", type=click.Path(path_type=Path, file_okay=False), help="MNIST directory."
)
@click.option(
    "--train-limit", type=click.IntRange(min=1), help="Use only the first N samples (any dataset)."
)
@click.option(
    "--dataset-option",
    multiple=True,
    metavar="NAME=VALUE",
    help="A dataset argument, e.g. noise=0.05 or n_per_class=40 for patterns.",
)
@click.option(
    "--epochs", multiple=True, type=click.IntRange(min=1), help="Epochs (repeat for a grid)."
)
@click.option("--batch-size", multiple=True, help="Minibatch size or 'full' (repeat for a grid).")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Stratified validation share of each run's split (default 0.2).",
)
@click.option("--seeds", help="Seeds, e.g. 0-9 or 0,3,7 (default: the preset's, else 0-9).")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes; results are the same for any number.",
)
@click.option(
    "--dask",
    metavar="local:N|tcp://HOST:PORT",
    help="Run on a Dask cluster: local:N starts N worker processes here; tcp://HOST:8786 "
    "uses a running `dask scheduler` (docs/cluster.md). Needs the cluster extra.",
)
@click.option(
    "--dask-scheduler-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Run on the Dask cluster whose scheduler wrote this file (--scheduler-file).",
)
@click.option(
    "--device",
    "device_spec",
    default="cpu",
    show_default=True,
    help="cpu, cuda, cuda:N or auto.",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write runs/, runs.csv, summary.md, curves.csv and the figures here.",
)
@click.option("--resume", is_flag=True, help="Skip the runs already finished in --output-dir.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the results in a non-empty --output-dir (runs/*.json and the tables; other "
    "files stay). They are deleted only after the data and every configuration have been "
    "checked.",
)
@click.option("--no-plots", is_flag=True, help="Do not draw loss_curves.png and accuracy.png.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line per run.")
@click.pass_context
def experiment(ctx: click.Context, preset_name: str | None, **params: Any) -> None:
    """Run a preset or a grid (models × optimizers × hyperparameters × seeds).

    Each run gets its own seeded split, initial weights and minibatch order. The
    results go to --output-dir as one JSON file per run plus runs.csv, summary.md
    (mean ± std and per-seed tables), curves.csv and, with matplotlib,
    loss_curves.png and accuracy.png. summary.md is also printed at the end.

    \b
    Examples:
      cnnx experiment --list
      cnnx experiment report-table5 --output-dir out
      cnnx experiment toy-lr --output-dir out-lr --jobs 2
      cnnx experiment report-table5 --data course.xlsx --output-dir course
      cnnx experiment --model simple --model enhanced --optimizer adam \\
          --lr 0.01 --lr 0.001 --seeds 0-4 --epochs 100 --output-dir mine
      cnnx experiment --resume --output-dir mine      # finish an interrupted one
      cnnx experiment toy-lr --output-dir out-lr --dask local:4
      cnnx experiment toy-lr --output-dir out-lr --dask tcp://10.0.0.5:8786
    """
    with terminate_raises():
        try:
            _experiment(ctx, preset_name, params)
        except Terminated:
            click.echo("terminated", err=True)
            sys.exit(EXIT_TERMINATED)


def _experiment(ctx: click.Context, preset_name: str | None, params: dict[str, Any]) -> None:
    from cnnx.experiment import run_experiment

    if params["list_only"]:
        list_presets()
        return
    seeds = None
    if params["seeds"] is not None:
        try:
            seeds = parse_seeds(params["seeds"])
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    output_dir = params["output_dir"]
    grid_given = any(_given(ctx, f) for f in GRID_FLAGS)
    if preset_name is not None:
        if preset_name not in PRESETS:
            raise click.UsageError(
                f"unknown preset {preset_name!r}; available: {', '.join(PRESETS)} "
                "(cnnx experiment --list)"
            )
        spec = preset_with_overrides(ctx, preset_name, params)
    elif params["resume"] and output_dir is not None and not grid_given:
        spec = saved_experiment(output_dir)
    else:
        spec = Experiment("custom", tuple(custom_grid(params)), seeds or tuple(range(10)))
    say = lambda line: click.echo(line, err=True)  # noqa: E731
    cluster = ClusterSpec.parse(params["dask"], params["dask_scheduler_file"])
    if cluster is not None and _given(ctx, "jobs"):
        raise click.UsageError("--jobs runs worker processes here; with --dask, drop it")
    executor = None
    if cluster is not None:
        executor = connect(cluster, device=params["device_spec"], log=say)
    with executor if executor is not None else contextlib.nullcontext():
        result = run_experiment(
            spec,
            output_dir,
            seeds=seeds,
            jobs=params["jobs"],
            device=params["device_spec"],
            resume=params["resume"],
            overwrite=params["overwrite"],
            plots=not params["no_plots"],
            quiet=params["quiet"],
            log=say,
            executor=executor,
        )
    click.echo(result.summary, nl=False)
    if result.files:
        written = ", ".join(p.name for p in result.files)
        click.echo(f"wrote {written} in {result.output_dir} ({result.elapsed:.1f} s)", err=True)
