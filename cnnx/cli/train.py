"""``cnnx train``: train a model on a bundled or local dataset and report how it went."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from cnnx import models
from cnnx.backends import device as resolve_device
from cnnx.checkpoint import load_checkpoint
from cnnx.cli.options import build_optimizer, optimizer_options
from cnnx.cli.output import BEST, CONFIG, LAST, METRICS, RunDirectory
from cnnx.errors import CnnxError
from cnnx.train import EpochRecord, evaluate, fit
from cnnx.utils.progress import Progress


@dataclass(frozen=True)
class DatasetDefaults:
    """Training defaults that make sense for one dataset."""

    model: str
    optimizer: str
    lr: float
    epochs: int
    batch_size: int | None
    extra: dict[str, float]


# digits6x6 defaults reproduce report 000's best configuration (S-Adam).
DEFAULTS: dict[str, DatasetDefaults] = {
    "digits6x6": DatasetDefaults(
        "simple_cnn", "adam", 0.01, 300, None, {"beta1": 0.7, "beta2": 0.99}
    ),
    "mnist": DatasetDefaults("mnist_cnn", "adam", 0.001, 3, 64, {}),
    "patterns": DatasetDefaults("toy_convnet", "sgd", 0.01, 500, 8, {}),
}

HYPER_FLAGS = ("lr", "momentum", "rho", "beta1", "beta2", "eps", "weight_decay")


@dataclass
class Splits:
    """Training and validation arrays, with a name for the validation part."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray] | None
    val_name: str
    description: str


def load_splits(config: dict[str, Any]) -> Splits:
    """Load the configured dataset and split it the way ``cnnx train`` documents.

    digits6x6 and patterns: a stratified ``val_fraction`` split (default 0.2) drawn
    with the run's seed. mnist: the train split, evaluated on the test split, or on
    a stratified part of train when ``val_fraction`` is given.
    """
    from cnnx import datasets

    dataset, seed, limit = config["dataset"], config["seed"], config["train_limit"]
    fraction = config["val_fraction"]
    if dataset == "mnist":
        root = config["data_dir"]
        X, y = datasets.load_mnist("train", root=root)
        if limit is not None:
            X, y = X[:limit], y[:limit]
        name = f"MNIST train ({len(y)} images)"
        if not fraction:
            Xt, yt = datasets.load_mnist("test", root=root)
            return Splits((X, y), (Xt, yt), "test", name)
    else:
        if dataset == "digits6x6":
            X, y = datasets.load_digits6x6(config["data"])
            name = config["data"] or "the bundled 6×6 digits"
        else:
            X, y = datasets.make_patterns()
            name = "the 11×11 patterns"
        if limit is not None:
            X, y = X[:limit], y[:limit]
        name = f"{name} ({len(y)} samples)"
        fraction = 0.2 if fraction is None else fraction
        if fraction == 0:
            return Splits((X, y), None, "val", name)
    train_idx, val_idx = datasets.stratified_split(y, fraction, seed=seed)
    return Splits((X[train_idx], y[train_idx]), (X[val_idx], y[val_idx]), "val", name)


class Reporter:
    """Shows training progress: a bar on a terminal, periodic plain lines otherwise."""

    def __init__(
        self, epochs: range, samples: int, batches_per_epoch: int, quiet: bool, val_name: str
    ):
        self.last_epoch = epochs.stop - 1
        self.quiet = quiet
        self.val_name = val_name
        self.interactive = sys.stderr.isatty() and not quiet
        self.every = max(1, len(epochs) // 10)
        self.per_batch = batches_per_epoch > 1
        total = len(epochs) * samples if self.per_batch else len(epochs)
        unit = "samples" if self.per_batch else "epochs"
        self.bar = Progress(total, "train", unit, enabled=self.interactive)

    def on_batch(self, count: int) -> None:
        if self.per_batch:
            self.bar.update(count)

    def describe(self, record: EpochRecord) -> str:
        text = f"loss {record.loss:.4f}  acc {record.accuracy:.4f}"
        if record.val_accuracy is not None:
            text += (
                f"  {self.val_name}_loss {record.val_loss:.4f}"
                f"  {self.val_name}_acc {record.val_accuracy:.4f}"
            )
        return text

    def on_epoch(self, record: EpochRecord) -> None:
        if self.interactive:
            if not self.per_batch:
                self.bar.update(1)
            self.bar.set_postfix(f"epoch {record.epoch}  {self.describe(record)}")
        elif not self.quiet and (record.epoch % self.every == 0 or record.epoch == self.last_epoch):
            click.echo(
                f"epoch {record.epoch}/{self.last_epoch}  {self.describe(record)}"
                f"  {record.seconds:.3f}s",
                err=True,
            )

    def close(self) -> None:
        self.bar.close()


def _explicit(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def new_config(ctx: click.Context, params: dict[str, Any], dev_spec: str) -> dict[str, Any]:
    """The full configuration of a new run: flags given, else the dataset's defaults."""
    dataset = params["dataset"]
    defaults = DEFAULTS[dataset]
    if dataset == "mnist" and params["data"] is not None:
        raise click.UsageError("--data is a 6×6 workbook; for mnist use --data-dir")
    if dataset != "mnist" and params["data_dir"] is not None:
        raise click.UsageError("--data-dir applies to --dataset mnist only")
    if dataset == "patterns" and params["data"] is not None:
        raise click.UsageError("--data is a 6×6 workbook; the patterns dataset is generated")
    optimizer = params["optimizer"] or defaults.optimizer
    hyper = {k: params[k] for k in HYPER_FLAGS if params[k] is not None}
    if optimizer == defaults.optimizer and params["optimizer"] is None:
        hyper = {**defaults.extra, **hyper}
    hyper.setdefault("lr", defaults.lr)
    return {
        "dataset": dataset,
        "data": str(params["data"]) if params["data"] is not None else None,
        "data_dir": str(params["data_dir"]) if params["data_dir"] is not None else None,
        "train_limit": params["train_limit"],
        "model": models.canonical_name(params["model_name"] or defaults.model),
        "optimizer": optimizer,
        "hyperparameters": hyper,
        "epochs": params["epochs"] or defaults.epochs,
        "batch_size": params["batch_size"] or defaults.batch_size,
        "val_fraction": params["val_fraction"],
        "seed": params["seed"],
        "device": dev_spec,
    }


# Flags that may differ when resuming; every other flag given must match the saved run.
RESUMABLE_FLAGS = {"epochs", "device_spec", "quiet", "save_every", "resume", "overwrite"}


def resume_config(
    ctx: click.Context, params: dict[str, Any], saved: dict[str, Any]
) -> dict[str, Any]:
    """The saved configuration, with the flags that may change on resume applied.

    Raises:
        click.UsageError: a flag contradicts the saved configuration.
    """
    proposed = new_config(ctx, params, saved["device"])
    conflicts = []
    for name in ctx.params:
        if name in RESUMABLE_FLAGS or not _explicit(ctx, name):
            continue
        if name in HYPER_FLAGS:
            ours, theirs = proposed["hyperparameters"].get(name), saved["hyperparameters"].get(name)
        elif name == "model_name":
            ours, theirs = proposed["model"], saved["model"]
        elif name == "output_dir":
            continue
        else:
            ours, theirs = proposed.get(name), saved.get(name)
        if ours != theirs:
            conflicts.append(
                f"--{name.replace('_name', '').replace('_', '-')} {ours} (saved: {theirs})"
            )
    if conflicts:
        raise click.UsageError(
            "--resume continues a run with its saved configuration; these flags contradict it: "
            + "; ".join(conflicts)
        )
    config = dict(saved)
    if _explicit(ctx, "epochs"):
        config["epochs"] = params["epochs"]
    return config


def _best_so_far(run_dir: Path, epochs: int) -> float:
    best = -1.0
    path = run_dir / METRICS
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines()[:epochs]:
            value = json.loads(line).get("val_accuracy")
            if value is not None:
                best = max(best, value)
    return best


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
    type=click.Choice(sorted(DEFAULTS)),
    default="digits6x6",
    show_default=True,
    help="What to train on.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Your own 6×6 workbook in the course layout (sheet 'Data').",
)
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
    help="simple, enhanced, mnist_cnn, lenet5, mlp or toy_convnet (default: simple "
    "for digits6x6, mnist_cnn for mnist, toy_convnet for patterns).",
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
    help="Write config.json, metrics.jsonl, last.npz (final weights) and best.npz here.",
)
@click.option("--overwrite", is_flag=True, help="Allow --output-dir to replace an existing run.")
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
@click.option("--quiet", "-q", is_flag=True, help="Print only the final summary.")
@click.pass_context
def train(ctx: click.Context, **params: Any) -> None:
    """Train a model and print a summary.

    With no options it trains report 000's SimpleCNN with Adam (lr 0.01, β1 0.7,
    β2 0.99) for 300 full-batch epochs on the bundled 6×6 digits, 80/20 stratified
    split, seed 0, on the CPU.

    \b
    Examples:
      cnnx train
      cnnx train --device cuda --model enhanced --optimizer rmsprop --lr 0.001
      cnnx train --data my_course_file.xlsx --epochs 600 --output-dir runs/mine
      cnnx train --dataset mnist --epochs 5 --batch-size 128 --output-dir runs/mnist
      cnnx train --output-dir runs/a --save-every 50     # later: cnnx train --resume runs/a
    """
    quiet = params["quiet"]
    dev = resolve_device(params["device_spec"])  # fails early, before any data is read
    resume_dir: Path | None = params["resume"]
    checkpoint = None
    if resume_dir is not None:
        if params["output_dir"] is not None and Path(params["output_dir"]) != resume_dir:
            raise click.UsageError(
                "--resume writes into the run's own directory; drop --output-dir"
            )
        if not (resume_dir / CONFIG).is_file() or not (resume_dir / LAST).is_file():
            raise CnnxError(f"--resume {resume_dir}: no {CONFIG} and {LAST} there to resume from")
        run_dir: RunDirectory | None = RunDirectory(resume_dir)
        config = resume_config(ctx, params, run_dir.read_config())
        config["device"] = dev.spec
        checkpoint = load_checkpoint(resume_dir / LAST)
    else:
        if params["save_every"] is not None and params["output_dir"] is None:
            raise click.UsageError("--save-every needs --output-dir")
        config = new_config(ctx, params, dev.spec)
        run_dir = (
            RunDirectory.create(params["output_dir"], params["overwrite"])
            if params["output_dir"] is not None
            else None
        )

    splits = load_splits(config)
    model = models.get(config["model"], seed=config["seed"])
    model.to(dev)
    opt = build_optimizer(config["optimizer"], model, config["hyperparameters"])
    rng = np.random.default_rng(config["seed"])
    initial_epoch = 0
    if checkpoint is not None:
        checkpoint.restore_model(model)
        checkpoint.restore_optimizer(opt)
        checkpoint.restore_rng(rng)
        initial_epoch = int(checkpoint.epoch or 0)
        if config["epochs"] <= initial_epoch:
            raise click.UsageError(
                f"--resume {resume_dir}: the run already has {initial_epoch} epochs; pass "
                f"--epochs larger than that to continue"
            )
        run_dir.truncate_metrics(initial_epoch)
    X, y = splits.train
    config["train_samples"] = len(y)
    config["val_samples"] = 0 if splits.val is None else len(splits.val[1])
    if run_dir is not None:
        run_dir.write_config(config)

    epochs = range(initial_epoch + 1, config["epochs"] + 1)
    if not quiet:
        action = f"resuming at epoch {initial_epoch + 1} of" if initial_epoch else "training"
        click.echo(
            f"{action} {config['model']} ({model.num_parameters():,} parameters) on "
            f"{splits.description} with {opt!r}, {config['epochs']} epochs, on {dev}",
            err=True,
        )
    batch_size = config["batch_size"]
    batches = 1 if batch_size is None else -(-len(y) // batch_size)
    reporter = Reporter(epochs, len(y), batches, quiet, splits.val_name)
    save_every = params["save_every"]
    best = _best_so_far(run_dir.path, initial_epoch) if run_dir is not None else -1.0
    meta = {"dataset": config["dataset"], "device": dev.spec}

    def on_epoch(record: EpochRecord) -> None:
        nonlocal best
        reporter.on_epoch(record)
        if run_dir is None:
            return
        run_dir.append_metrics(record)
        position = {"rng": rng, "epoch": record.epoch, "step": opt.step_count}
        if save_every is not None and record.epoch % save_every == 0:
            run_dir.save(LAST, model, opt, config, **position, **meta)
        if record.val_accuracy is not None and record.val_accuracy > best:
            best = record.val_accuracy
            run_dir.save(BEST, model, opt, config, **position, **meta)

    start = time.perf_counter()
    try:
        history = fit(
            model, opt, splits.train, splits.val, epochs=config["epochs"],
            batch_size=batch_size, rng=rng, initial_epoch=initial_epoch,
            on_epoch=on_epoch, on_batch=reporter.on_batch,
        )  # fmt: skip
    finally:
        reporter.close()
        if run_dir is not None:
            run_dir.close()
    wall = time.perf_counter() - start
    if run_dir is not None:
        run_dir.save(
            LAST,
            model,
            opt,
            config,
            rng=rng,
            epoch=history.final.epoch,
            step=opt.step_count,
            **meta,
        )
    final_train = evaluate(model, X, y)

    last = history.final
    click.echo(f"device          {dev}")
    click.echo(f"model           {config['model']} ({model.num_parameters():,} parameters)")
    click.echo(f"optimizer       {opt!r}")
    click.echo(f"epochs          {last.epoch} (batch {batch_size or 'full'})")
    click.echo(
        f"train accuracy  {final_train.accuracy:.4f}  loss {final_train.loss:.4f}"
        f"  ({len(y)} samples)"
    )
    if last.val_accuracy is not None:
        click.echo(
            f"{splits.val_name + ' accuracy':<15} {last.val_accuracy:.4f}  loss {last.val_loss:.4f}"
            f"  ({config['val_samples']} samples)"
        )
    click.echo(f"wall time       {wall:.2f} s")
    if run_dir is not None:
        click.echo(f"saved to        {run_dir.path}")
