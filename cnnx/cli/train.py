"""``cnnx train``: train a model on a bundled or local dataset and report how it went.

The run itself is a :class:`cnnx.runs.RunSpec` executed by :func:`cnnx.runs.execute`;
this module turns flags (and ``--config`` files) into a spec and prints.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from cnnx import runs
from cnnx.backends import device as resolve_device
from cnnx.cli.data_flags import (
    FILE_FLAGS,
    file_data_options,
    file_flags_given,
    file_options,
    is_workbook,
)
from cnnx.cli.options import check_optimizer_flags, optimizer_options
from cnnx.errors import ConfigError, DeviceError
from cnnx.runs import RunSpec
from cnnx.runs.signals import EXIT_TERMINATED, RunInterrupted, Terminated, terminate_raises
from cnnx.runs.spec import HYPERPARAMETER_ORDER
from cnnx.train import EpochRecord
from cnnx.utils.progress import Progress, Ticker, format_duration

HYPER_FLAGS = HYPERPARAMETER_ORDER  # one flag per optimizer hyperparameter

# Spec fields and the flags that set them (for messages that name the flag).
FIELD_FLAGS = {
    **{f"hyperparameters.{k}": k for k in HYPER_FLAGS},
    "optimizer": "optimizer",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "val_fraction": "val_fraction",
    "seed": "seed",
    "dataset": "dataset",
    "dataset_options.path": "data",
    "dataset_options.root": "data_dir",
    "dataset_options.limit": "train_limit",
    "limit": "train_limit",
    **{f"dataset_options.{option}": flag for flag, option in FILE_FLAGS.items()},
}


def flag_name(param: str) -> str:
    """``"model_name"`` -> ``"--model"``, ``"batch_size"`` -> ``"--batch-size"``."""
    return "--" + param.replace("_name", "").replace("_", "-")


def explicit(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def as_usage_error(ctx: click.Context, exc: ConfigError) -> Exception:
    """A spec error caused by a flag, as a usage error naming that flag; others unchanged."""
    param = FIELD_FLAGS.get(exc.field or "")
    if param is None or not explicit(ctx, param):
        return exc
    value = ctx.params.get(param)
    return click.UsageError(f"{flag_name(param)} {value}: {exc.detail}")


def chosen_dataset(ctx: click.Context, params: dict[str, Any]) -> str | None:
    """The dataset the flags ask for: ``--dataset``, else ``files`` for ``--data`` that is
    not a workbook or for own-data flags; None when they ask for none."""
    if explicit(ctx, "dataset"):
        return params["dataset"]
    if params["data"] is not None and not is_workbook(params["data"]):
        return "files"  # an image folder, CSV or NumPy file
    if file_flags_given(params):
        return "files"
    return None


def spec_from_flags(
    ctx: click.Context, base: RunSpec, params: dict[str, Any], device: str
) -> RunSpec:
    """``base`` with every flag given applied (flags override fields).

    An explicitly chosen ``--optimizer`` keeps only the base's learning rate; the other
    hyperparameters are then the optimizer's own defaults unless flags set them.
    """
    changes: dict[str, Any] = {"device": device}
    dataset = base.dataset
    options = dict(base.dataset_options)
    wanted = chosen_dataset(ctx, params)
    if wanted is not None and wanted != base.dataset:
        dataset, options = wanted, {}
    if dataset == "files" and params["data"] is None and "path" not in options:
        given = ", ".join(file_flags_given(params)) or "--dataset files"
        raise click.UsageError(
            f"{given}: give your own data with --data PATH (an image folder, .csv, .npz or .npy)"
        )
    source = runs.get_source(dataset)
    if dataset != "files" and file_flags_given(params):
        raise click.UsageError(
            f"{', '.join(file_flags_given(params))} apply to your own data files "
            f"(--data PATH), not to --dataset {dataset}"
        )
    if dataset == "files":
        options.update(file_options(params))
    if params["data"] is not None:
        if "path" not in source.options:
            raise click.UsageError(
                f"--data is a 6×6 workbook; {dataset} does not read one"
                + (" (for mnist use --data-dir)" if dataset == "mnist" else "")
            )
        options["path"] = str(params["data"])
    if params["data_dir"] is not None:
        if "root" not in source.options:
            raise click.UsageError("--data-dir applies to --dataset mnist only")
        options["root"] = str(params["data_dir"])
    if params["train_limit"] is not None:
        options["limit"] = params["train_limit"]
    changes.update(dataset=dataset, dataset_options=options)
    flags = {k: params[k] for k in HYPER_FLAGS if params[k] is not None}
    if params["optimizer"] is not None:
        optimizer = params["optimizer"]
        hyper = {"lr": base.hyperparameters["lr"], **flags}
    else:
        optimizer = base.optimizer
        hyper = {**base.hyperparameters, **flags}
    check_optimizer_flags(optimizer, flags)
    changes.update(optimizer=optimizer, hyperparameters=hyper)
    if params["model_name"] is not None:
        changes["model"] = params["model_name"]
    for name in ("epochs", "batch_size", "val_fraction"):
        if params[name] is not None:
            changes[name] = params[name]
    if explicit(ctx, "seed"):
        changes["seed"] = params["seed"]
    try:
        return base.replace(**changes)
    except ConfigError as exc:
        raise as_usage_error(ctx, exc) from None


# Flags that may differ when resuming; every other flag given must match the saved run.
RESUMABLE_FLAGS = {
    "epochs", "device_spec", "quiet", "save_every", "resume", "overwrite", "output_dir", "stats",
}  # fmt: skip


def _flag_value(spec: RunSpec, param: str) -> Any:
    if param in HYPER_FLAGS:
        return spec.hyperparameters.get(param)
    options = {"data": "path", "data_dir": "root", "train_limit": "limit", **FILE_FLAGS}
    if param in options:
        return spec.dataset_options.get(options[param])
    return getattr(spec, {"model_name": "model"}.get(param, param))


def resume_spec(ctx: click.Context, params: dict[str, Any], saved: RunSpec) -> RunSpec:
    """The saved spec, with the flags that may change on resume applied.

    Raises:
        click.UsageError: a flag contradicts the saved spec.
    """
    proposed = spec_from_flags(ctx, saved, params, saved.device)
    conflicts = []
    for name in ctx.params:
        if name in RESUMABLE_FLAGS or not explicit(ctx, name):
            continue
        ours, theirs = _flag_value(proposed, name), _flag_value(saved, name)
        if ours != theirs:
            conflicts.append(f"{flag_name(name)} {ours} (saved: {theirs})")
    if conflicts:
        raise click.UsageError(
            "--resume continues a run with its saved configuration; these flags contradict it: "
            + "; ".join(conflicts)
        )
    return saved.replace(epochs=params["epochs"]) if explicit(ctx, "epochs") else saved


def plural(count: int, noun: str) -> str:
    """``"1 epoch"``, ``"3 epochs"``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class Reporter:
    """Shows training progress.

    On a terminal: a bar whose end always shows the latest epoch's metrics. Otherwise
    (a log, a pipe), unless quiet: a plain line at least every ``interval`` seconds -
    the epoch's metrics at an epoch's end, or how far the current epoch has got - and
    one for the last epoch.
    """

    def __init__(
        self,
        epochs: range,
        samples: int,
        batches_per_epoch: int,
        quiet: bool,
        val_name: str,
        interval: float = 10.0,
    ):
        self.last_epoch = epochs.stop - 1
        self.epoch = epochs.start
        self.samples = samples
        self.seen = 0
        self.quiet = quiet
        self.val_name = val_name
        self.interactive = sys.stderr.isatty() and not quiet
        self.plain = not quiet and not self.interactive
        self.ticker = Ticker(interval)
        self.per_batch = batches_per_epoch > 1
        total = len(epochs) * samples if self.per_batch else len(epochs)
        unit = "samples" if self.per_batch else "epochs"
        self.bar = Progress(total, "train", unit, enabled=self.interactive)

    def on_batch(self, count: int) -> None:
        if self.per_batch:
            self.bar.update(count)
        self.seen += count
        # The batch that ends an epoch leaves the line to on_epoch, which has its metrics.
        if self.plain and self.seen < self.samples and self.ticker.due():
            click.echo(
                f"epoch {self.epoch}/{self.last_epoch}  {self.seen:,}/{self.samples:,} samples "
                f"({100 * self.seen / max(self.samples, 1):.0f}%)  "
                f"{format_duration(self.ticker.elapsed)} elapsed",
                err=True,
            )

    def describe(self, record: EpochRecord) -> str:
        text = f"loss {record.loss:.4f}  acc {record.accuracy:.4f}"
        if record.val_accuracy is not None:
            text += (
                f"  {self.val_name}_loss {record.val_loss:.4f}"
                f"  {self.val_name}_acc {record.val_accuracy:.4f}"
            )
        return text

    def on_epoch(self, record: EpochRecord) -> None:
        self.epoch, self.seen = record.epoch + 1, 0
        if self.interactive:
            if not self.per_batch:
                self.bar.update(1)
            self.bar.set_postfix(f"epoch {record.epoch}  {self.describe(record)}")
        elif self.plain and (record.epoch == self.last_epoch or self.ticker.due()):
            self.ticker.mark()
            click.echo(
                f"epoch {record.epoch}/{self.last_epoch}  {self.describe(record)}"
                f"  {record.seconds:.3f}s",
                err=True,
            )

    def close(self) -> None:
        self.bar.close()


@click.command()
@click.option(
    "--device",
    "device_spec",
    default="cpu",
    show_default=True,
    help="cpu, cuda, cuda:N or auto (GPU if usable, else CPU).",
)
@click.option(
    "--dataset",
    type=click.Choice(sorted(runs.SOURCES)),
    default="digits6x6",
    show_default=True,
    help="What to train on.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Your own data: an image folder (root/<class>/<images>), a .csv, .npz or .npy "
    "file (see docs/datasets-own.md), or a 6×6 workbook (.xlsx) in the course layout.",
)
@file_data_options()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory holding the MNIST IDX files (default: $CNNX_DATA_DIR/mnist, "
    "else ~/.cache/cnnx/mnist).",
)
@click.option(
    "--train-limit", type=click.IntRange(min=1), help="Use only the first N training samples."
)
@click.option(
    "--model",
    "model_name",
    help="simple, enhanced, mnist_cnn, lenet5, mlp, toy_convnet or convnet (sized from "
    "the data) (default: simple for digits6x6, mnist_cnn for mnist, toy_convnet for "
    "patterns, convnet for --data files).",
)
@optimizer_options
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    help="Passes over the training set (default: 300 digits6x6, 3 mnist, 500 patterns).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Minibatch size (default: full batch for digits6x6, 64 mnist, 8 patterns).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Hold out this stratified fraction for validation (default 0.2; mnist uses "
    "its test split unless this is given).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seeds the weights, the split and the shuffling.",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write config.json, metrics.jsonl, last.npz (final weights) and best.npz (best "
    "validation accuracy, ties to the lower validation loss) here. Ctrl-C or SIGTERM saves "
    "the last finished epoch as last.npz, for --resume.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Let --output-dir replace the run already there (its config.json, metrics.jsonl, "
    "last.npz, best.npz; other files stay). The old run is kept aside until the new one has "
    "finished its first epoch and saved it, and restored if it fails before.",
)
@click.option(
    "--save-every",
    type=click.IntRange(min=1),
    help="Also save last.npz every K epochs (needs --output-dir), for --resume.",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Continue the run saved in this directory from its last.npz.",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Run the run defined in this JSON file (a run directory's config.json works); "
    "flags given override its fields.",
)
@click.option(
    "--stats",
    is_flag=True,
    help="Record per-epoch network statistics in metrics.jsonl: each layer's output "
    "mean/std and dead or saturated units, each parameter's gradient norm and update "
    "ratio (see docs/inspect.md).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the final summary.")
@click.pass_context
def train(ctx: click.Context, **params: Any) -> None:
    """Train a model and print a summary.

    With no options it trains report 000's SimpleCNN with Adam (lr 0.01, β1 0.7,
    β2 0.99) for 300 full-batch epochs on the bundled 6×6 digits, 80/20 stratified
    split, seed 0, on the CPU.

    --config FILE runs the run defined in FILE (a config.json of a run directory,
    or a best.json of cnnx tune); flags given as well override its fields.

    \b
    Examples:
      cnnx train
      cnnx train --device cuda --model enhanced --optimizer rmsprop --lr 0.001
      cnnx train --data my_course_file.xlsx --epochs 600 --output-dir runs/mine
      cnnx train --data photos/ --image-size 64 --output-dir runs/photos
      cnnx train --data train.csv --normalize --epochs 10
      cnnx train --dataset mnist --epochs 5 --batch-size 128 --output-dir runs/mnist
      cnnx train --output-dir runs/a --save-every 50     # later: cnnx train --resume runs/a
      cnnx train --config runs/a/config.json --seed 1 --output-dir runs/a-seed1
    """
    with terminate_raises():
        try:
            _train(ctx, params)
        except RunInterrupted as stop:
            click.echo(interrupted_message(stop, params), err=True)
            sys.exit(stop.exit_status)
        except Terminated:
            click.echo("terminated", err=True)
            sys.exit(EXIT_TERMINATED)


def interrupted_message(stop: RunInterrupted, params: dict[str, Any]) -> str:
    """What an interrupted run kept, and how to continue it."""
    what = "terminated" if stop.terminated else "interrupted"
    run_dir = params["resume"] or params["output_dir"]
    if run_dir is None:
        return f"{what}: nothing was kept (no --output-dir)"
    if stop.checkpoint is None:
        return f"{what}: no epoch had finished, so {run_dir} was left as it was"
    return (
        f"{what}: epoch {stop.epoch} is saved in {stop.checkpoint}; continue with: "
        f"cnnx train --resume {run_dir}"
    )


def _train(ctx: click.Context, params: dict[str, Any]) -> None:
    quiet = params["quiet"]
    resume_dir: Path | None = params["resume"]
    config_file: Path | None = params["config"]
    if resume_dir is not None:
        if params["output_dir"] is not None and Path(params["output_dir"]) != resume_dir:
            raise click.UsageError(
                "--resume writes into the run's own directory; drop --output-dir"
            )
        if config_file is not None:
            raise click.UsageError("--resume continues the run saved there; drop --config")
        dev = resolve_device(params["device_spec"])  # fails early, before any data is read
        saved = runs.saved_spec(resume_dir)
        spec = resume_spec(ctx, params, saved).replace(device=dev.spec)
        run_dir: Path | None = resume_dir
    else:
        if params["save_every"] is not None and params["output_dir"] is None:
            raise click.UsageError("--save-every needs --output-dir")
        if config_file is not None:
            base = RunSpec.from_dict(runs.read_config_file(config_file), source=str(config_file))
            device = params["device_spec"] if explicit(ctx, "device_spec") else base.device
        else:
            base = runs.defaults(chosen_dataset(ctx, params) or params["dataset"])
            device = params["device_spec"]
        try:
            dev = resolve_device(device)  # fails early, before any data is read
        except DeviceError as exc:
            if config_file is None or explicit(ctx, "device_spec"):
                raise
            # The user never typed this device: say where it came from and the way out.
            raise DeviceError(
                f"{config_file}: device {device!r} from this file: {exc}; pass --device cpu "
                "to run it here"
            ) from None
        spec = spec_from_flags(ctx, base, params, dev.spec)
        run_dir = params["output_dir"]

    reporter: Reporter | None = None

    def on_start(start: runs.RunStart) -> None:
        nonlocal reporter
        n = len(start.data.train[1])
        batches = 1 if spec.batch_size is None else -(-n // spec.batch_size)
        epochs = range(start.initial_epoch + 1, spec.epochs + 1)
        reporter = Reporter(epochs, n, batches, quiet, start.data.val_name)
        if not quiet and start.data.summary:
            click.echo(start.data.summary, err=True)
        if not quiet:
            action = (
                f"resuming at epoch {start.initial_epoch + 1} of"
                if start.initial_epoch
                else "training"
            )
            click.echo(
                f"{action} {spec.model} ({start.model.num_parameters():,} parameters) on "
                f"{start.data.description} with {start.optimizer!r}, "
                f"{plural(spec.epochs, 'epoch')}, on {start.device}",
                err=True,
            )

    start = time.perf_counter()
    try:
        outcome = runs.execute(
            spec,
            run_dir=run_dir,
            resume=resume_dir is not None,
            overwrite=params["overwrite"],
            save_every=params["save_every"],
            stats=params["stats"],
            on_start=on_start,
            on_epoch=lambda record: reporter.on_epoch(record) if reporter else None,
            on_batch=lambda count: reporter.on_batch(count) if reporter else None,
        )
    except ConfigError as exc:
        if resume_dir is not None and exc.field == "epochs":
            raise click.UsageError(f"--resume {resume_dir}: {exc.detail}") from None
        if config_file is not None and exc.field == "model_options":
            # No flag sets model_options: they came from the file.
            raise ConfigError(f"{config_file}: {exc}", field=exc.field, detail=exc.detail) from None
        raise as_usage_error(ctx, exc) from None
    finally:
        if reporter is not None:
            reporter.close()
    wall = time.perf_counter() - start
    if outcome.diverged is not None:
        raise outcome.diverged

    last = outcome.history.final
    click.echo(f"device          {outcome.device}")
    click.echo(f"model           {spec.model} ({outcome.model.num_parameters():,} parameters)")
    click.echo(f"optimizer       {outcome.optimizer!r}")
    click.echo(f"data            {outcome.description}: {outcome.samples_read} samples read")
    click.echo(f"epochs          {last.epoch} (batch {spec.batch_size or 'full'})")
    click.echo(
        f"train accuracy  {outcome.train_accuracy:.4f}  loss {outcome.train_loss:.4f}"
        f"  ({outcome.train_samples} samples)"
    )
    if last.val_accuracy is not None:
        click.echo(
            f"{outcome.val_name + ' accuracy':<15} {last.val_accuracy:.4f}  "
            f"loss {last.val_loss:.4f}  ({outcome.val_samples} samples)"
        )
    click.echo(f"wall time       {wall:.2f} s")
    if outcome.run_dir is not None:
        kept = "config.json, metrics.jsonl, last.npz" + (", best.npz" if outcome.best else "")
        click.echo(f"saved to        {outcome.run_dir} ({kept})")
    else:
        click.echo("saved to        nothing: pass --output-dir DIR to keep weights and metrics")
