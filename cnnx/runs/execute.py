""":func:`execute`: the one function that runs a :class:`RunSpec`.

``cnnx train``, the experiment runner, the cluster runner and ``cnnx tune`` all call it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnx._version import __version__
from cnnx.errors import ConfigError, TrainingDiverged
from cnnx.nn.module import Module
from cnnx.optim.optimizer import Optimizer
from cnnx.runs.data import RunData, load_data
from cnnx.runs.directory import BEST, LAST, RunDirectory, is_better
from cnnx.runs.files import size_model_to_data
from cnnx.runs.signals import RunInterrupted, Terminated
from cnnx.runs.spec import RunSpec
from cnnx.train import EpochRecord, History, evaluate, fit, predict_proba

OK = "ok"
DIVERGED = "diverged"


def build(spec: RunSpec) -> tuple[Module, Optimizer]:
    """The run's model (initialised on the host from ``spec.seed``, then moved to
    ``spec.device``) and its optimizer.

    Raises:
        ConfigError: the model or optimizer refuses an option or hyperparameter.
        DeviceError: the device is not usable.
    """
    from cnnx import models
    from cnnx.backends import device as resolve_device
    from cnnx.optim import OPTIMIZERS

    try:
        model = models.get(spec.model, seed=spec.seed, **spec.model_options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"model_options of {spec.model}: {exc}", field="model_options", detail=str(exc)
        ) from None
    model.to(resolve_device(spec.device))
    try:
        optimizer = OPTIMIZERS[spec.optimizer](model.named_parameters(), **spec.hyperparameters)
    except ValueError as exc:
        name = str(exc).split(" ", 1)[0]
        raise ConfigError(
            f"{spec.optimizer}: {exc}", field=f"hyperparameters.{name}", detail=str(exc)
        ) from None
    return model, optimizer


def check_fits(spec: RunSpec, model: Module, data: RunData) -> None:
    """Run one sample through ``model`` (eval mode: nothing random is drawn) to make
    sure the model takes the data and outputs enough classes, before anything is written.

    Raises:
        ConfigError: naming the model, the dataset and the shapes or class counts.
    """
    X, y = data.train
    expected = getattr(model, "input_shape", None)
    if expected is not None and tuple(X.shape[1:]) != tuple(expected):
        raise ConfigError(
            f"model {spec.model} takes inputs of shape {tuple(expected)} but dataset "
            f"{spec.dataset} has samples of shape {tuple(X.shape[1:])}",
            field="model",
        )
    try:
        classes = int(predict_proba(model, X[:1]).shape[1])
    except (ValueError, TypeError, IndexError) as exc:
        raise ConfigError(
            f"model {spec.model} cannot take dataset {spec.dataset}'s samples of shape "
            f"{tuple(X.shape[1:])}: {exc}",
            field="model",
        ) from None
    labels = int(y.max())
    if data.val is not None and len(data.val[1]):
        labels = max(labels, int(data.val[1].max()))
    if labels >= classes:
        raise ConfigError(
            f"model {spec.model} outputs {classes} classes but dataset {spec.dataset} has "
            f"labels up to {labels}",
            field="model",
        )


@dataclass
class RunStart:
    """What :func:`execute` hands ``on_start`` once everything is ready to train."""

    spec: RunSpec
    model: Module
    optimizer: Optimizer
    data: RunData
    initial_epoch: int
    device: Any


@dataclass
class RunOutcome:
    """What one executed run produced.

    For a finished run (``status == "ok"``) ``train_*`` come from one pass over the
    training split with the final weights and ``val_*`` from the last epoch's
    validation; for a diverged run all four are those of its last epoch with a finite
    loss (None if there was none), and ``diverged`` holds the exception.

    Attributes:
        spec, status (``"ok"``/``"diverged"``), history (this call's epochs), model,
        optimizer, train_loss, train_accuracy, val_loss, val_accuracy, train_samples,
        val_samples, samples_read (samples the data source delivered), val_name
        (``"val"``/``"test"``), description (of the data), initial_epoch (epochs done
        before this call: resumed runs), seconds, device (spec string), run_dir,
        diverged.
    """

    spec: RunSpec
    status: str
    history: History
    model: Module
    optimizer: Optimizer
    train_loss: float | None
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    train_samples: int
    val_samples: int
    samples_read: int
    val_name: str
    description: str
    initial_epoch: int
    seconds: float
    device: str
    run_dir: Path | None = None
    diverged: TrainingDiverged | None = None
    best: tuple[float, float] | None = field(default=None)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def epochs(self) -> int:
        """Epochs completed (with a finite loss), resumed ones included."""
        return self.initial_epoch + len(self.history)


class _Snapshot:
    """The training state at the end of the last finished epoch, kept in host memory so an
    interrupted run can save exactly that epoch (not the half-updated weights of the next)."""

    def __init__(self, model: Module, optimizer: Optimizer, rng: np.random.Generator, epoch: int):
        from cnnx.checkpoint import module_generators

        self.epoch = epoch
        self.model = model.state_dict()
        self.optimizer = optimizer.state_dict()
        self.rng = rng.bit_generator.state
        self.module_rngs = {k: g.bit_generator.state for k, g in module_generators(model).items()}

    def restore(self, model: Module, optimizer: Optimizer, rng: np.random.Generator) -> None:
        from cnnx.checkpoint import module_generators

        model.load_state_dict(self.model)
        optimizer.load_state_dict(self.optimizer)
        rng.bit_generator.state = self.rng
        for key, generator in module_generators(model).items():
            if key in self.module_rngs:
                generator.bit_generator.state = self.module_rngs[key]


def execute(
    spec: RunSpec,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    data: RunData | None = None,
    save_every: int | None = None,
    stats: Any = None,
    on_start: Callable[[RunStart], None] | None = None,
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> RunOutcome:
    """Execute one run: load (or take) its data, build, train, measure, and save.

    The seed draws the split, the initial weights and the minibatch order, so the same
    spec gives the same numbers on the CPU, in any process.

    Args:
        spec: the run.
        run_dir: a directory to keep the run in (config.json, metrics.jsonl, last.npz
            at the end and every ``save_every`` epochs, best.npz); None keeps nothing.
        resume: continue the run saved in ``run_dir`` from its last.npz up to
            ``spec.epochs`` (the spec must be the saved one, epochs and device aside).
        overwrite: a new run may replace the run already in ``run_dir``.
        data: already loaded data (a cluster worker that lacks the files); default
            :func:`load_data`.
        save_every: also save last.npz every K epochs.
        stats: per-epoch network statistics, passed to :func:`cnnx.fit` (True, or a
            :class:`cnnx.inspect.TrainingStats`); they land in metrics.jsonl.
        on_start: called once, before the first epoch.
        on_epoch: called with each epoch's record; returning True stops training.
        on_batch: called with each minibatch's size.

    Returns:
        A :class:`RunOutcome`; a diverging run is an outcome (``status "diverged"``),
        not an exception.

    Raises:
        ConfigError: the data and model do not fit together, or nothing to resume.
        DatasetError, DeviceError, OutputExistsError: as their names say.
        KeyboardInterrupt: after saving the last finished epoch as last.npz (with
            ``run_dir``), so the run can be resumed.
    """
    from cnnx.backends import device as resolve_device
    from cnnx.checkpoint import load_checkpoint

    start = time.perf_counter()
    dev = resolve_device(spec.device)
    if run_dir is None and (resume or save_every is not None):
        raise ConfigError("resume and save_every need a run directory")
    folder: RunDirectory | None = None
    checkpoint = None
    initial_epoch = 0
    if resume:
        folder = RunDirectory.open_existing(Path(run_dir))  # type: ignore[arg-type]
    try:
        if folder is not None:
            checkpoint = load_checkpoint(folder.path / LAST)
            initial_epoch = int(checkpoint.epoch or 0)
            if spec.epochs <= initial_epoch:
                raise ConfigError(
                    f"{folder.path}: the run already has {initial_epoch} epochs; pass epochs "
                    "larger than that to continue",
                    field="epochs",
                    detail=f"the run already has {initial_epoch} epochs; pass --epochs larger "
                    "than that to continue",
                )
        elif run_dir is not None:
            RunDirectory.check_new(Path(run_dir), overwrite)  # before any work, creating nothing
        if data is None:
            data = load_data(spec)
        spec = size_model_to_data(spec, data)  # convnet: channels, image size, classes
        model, optimizer = build(spec)
        check_fits(spec, model, data)
        rng = np.random.default_rng(spec.seed)
        best = (-1.0, math.inf)
        if checkpoint is not None and folder is not None:
            checkpoint.restore_model(model)
            checkpoint.restore_optimizer(optimizer)
            checkpoint.restore_rng(rng)
            folder.saved_epoch = initial_epoch
            best = folder.best_so_far(initial_epoch)
            folder.truncate_metrics(initial_epoch)
        elif run_dir is not None:
            folder = RunDirectory.open_new(Path(run_dir), overwrite)
    except BaseException:
        if folder is not None:
            folder.close()
        raise
    # From here on, a new run in ``folder`` is uncommitted until its first checkpoint:
    # if it fails before, the directory is left as it was found.
    committed = folder is None or resume
    n_train = len(data.train[1])
    n_val = 0 if data.val is None else len(data.val[1])
    config = {
        **spec.to_dict(),
        "train_samples": n_train,
        "val_samples": n_val,
        "samples_read": data.samples_read,
        "cnnx_version": __version__,
    }
    meta = {
        "dataset": spec.dataset,
        "device": dev.spec,
        "class_names": data.class_names,
        "preprocessing": data.preprocessing,
    }
    snapshot: _Snapshot | None = None
    records: list[EpochRecord] = []

    def save(name: str) -> None:
        assert folder is not None
        epoch = snapshot.epoch if snapshot is not None else initial_epoch
        folder.save(name, model, optimizer, config, rng=rng, epoch=epoch,
                    step=optimizer.step_count, **meta)  # fmt: skip

    def after_epoch(record: EpochRecord) -> bool | None:
        nonlocal snapshot, best, committed
        records.append(record)
        if folder is not None:
            folder.append_metrics(record)
            snapshot = _Snapshot(model, optimizer, rng, record.epoch)
            if not committed or (save_every is not None and record.epoch % save_every == 0):
                save(LAST)  # the first checkpoint of a new run, or a periodic one
            if not committed:
                folder.commit()
                committed = True
            if record.val_accuracy is not None and is_better(
                record.val_accuracy, record.val_loss, best
            ):
                best = (record.val_accuracy, record.val_loss)
                save(BEST)
        return on_epoch(record) if on_epoch is not None else None

    diverged: TrainingDiverged | None = None
    try:
        if folder is not None:
            folder.write_config(config)
        if on_start is not None:
            on_start(RunStart(spec, model, optimizer, data, initial_epoch, dev))
        # A diverging run is an expected, reported outcome; NumPy's overflow warnings on
        # its way to inf would only repeat that, once per layer.
        with np.errstate(over="ignore", invalid="ignore"):
            fit(
                model, optimizer, data.train, data.val, epochs=spec.epochs,
                batch_size=spec.batch_size, rng=rng, initial_epoch=initial_epoch,
                on_epoch=after_epoch, on_batch=on_batch, stats=stats,
            )  # fmt: skip
        if folder is not None:
            save(LAST)
    except TrainingDiverged as exc:
        diverged = exc
        if folder is not None and not committed:
            folder.abandon()
    except KeyboardInterrupt as exc:
        # Ctrl-C, or SIGTERM turned into one: keep the last finished epoch, so the run can
        # be resumed; a new run without one leaves the directory as it was found.
        saved: Path | None = None
        if folder is not None and snapshot is not None:
            snapshot.restore(model, optimizer, rng)
            save(LAST)
            saved = folder.path / LAST
            # The signal may have come after an epoch's metrics line and before its
            # snapshot: keep metrics.jsonl to the epochs last.npz holds.
            folder.close_metrics()
            folder.truncate_metrics(snapshot.epoch)
        elif folder is not None and not committed:
            folder.abandon()
        elif folder is not None and (folder.path / LAST).exists():
            saved = folder.path / LAST
        epoch = None if folder is None else folder.saved_epoch
        raise RunInterrupted(saved, epoch, isinstance(exc, Terminated)) from None
    except BaseException:
        if folder is not None and not committed:
            folder.abandon()
        raise
    finally:
        if folder is not None:
            folder.close()
    history = History(records)
    common = dict(
        spec=spec, history=history, model=model, optimizer=optimizer, train_samples=n_train,
        val_samples=n_val, samples_read=data.samples_read, val_name=data.val_name,
        description=data.description, initial_epoch=initial_epoch, device=dev.spec,
        run_dir=None if folder is None else folder.path,
    )  # fmt: skip
    if diverged is not None:
        last = records[-1] if records else None
        return RunOutcome(
            status=DIVERGED,
            train_loss=None if last is None else last.loss,
            train_accuracy=None if last is None else last.accuracy,
            val_loss=None if last is None else last.val_loss,
            val_accuracy=None if last is None else last.val_accuracy,
            seconds=time.perf_counter() - start,
            diverged=diverged,
            **common,
        )
    final_train = evaluate(model, data.train[0], data.train[1])
    last = records[-1]
    return RunOutcome(
        status=OK,
        train_loss=final_train.loss,
        train_accuracy=final_train.accuracy,
        val_loss=last.val_loss,
        val_accuracy=last.val_accuracy,
        seconds=time.perf_counter() - start,
        best=None if best[0] < 0 else best,
        **common,
    )
