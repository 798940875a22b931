"""The training loop (``cnnx.fit``), evaluation and batched inference.

Data is moved to the device once; minibatches are cut from it with an index
permutation drawn on the host from ``numpy.random.Generator(seed)``, so a run is
reproducible and a CPU run and a GPU run shuffle identically. Per-step losses
stay on the device and are read once per epoch, so a GPU loop does not wait
for the host at every step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from cnnx.backends import Device, device, get_array_module, ignore_float_errors, to_host
from cnnx.errors import TrainingDiverged
from cnnx.nn import functional as F
from cnnx.nn.loss import SoftmaxCrossEntropy
from cnnx.nn.module import Module
from cnnx.optim.optimizer import Optimizer

DEFAULT_EVAL_BATCH = 1024


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch produced.

    Attributes:
        epoch: 1-based epoch number.
        loss: mean training loss over the epoch's minibatches (weighted by size),
            each measured before that minibatch's update.
        accuracy: training accuracy over the same forward passes.
        val_loss: validation loss after the epoch, or None without validation data.
        val_accuracy: validation accuracy after the epoch, or None.
        seconds: wall time of the epoch, validation (and statistics) included.
        stats: with ``fit(..., stats=...)``, the epoch's network statistics (see
            :class:`cnnx.inspect.TrainingStats`); else None.
    """

    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    stats: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-ready dict; ``stats`` only when it was recorded."""
        data = asdict(self)
        if data["stats"] is None:
            del data["stats"]
        return data


class History:
    """Per-epoch records of a :func:`fit` run, with column accessors."""

    def __init__(self, records: list[EpochRecord] | None = None):
        self.records: list[EpochRecord] = list(records or [])

    def append(self, record: EpochRecord) -> None:
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[EpochRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> EpochRecord:
        return self.records[index]

    def __repr__(self) -> str:
        if not self.records:
            return "History(0 epochs)"
        last = self.records[-1]
        val = "" if last.val_accuracy is None else f", val_accuracy={last.val_accuracy:.4f}"
        return (
            f"History({len(self)} epochs, loss={last.loss:.4f}, accuracy={last.accuracy:.4f}{val})"
        )

    @property
    def final(self) -> EpochRecord:
        """The last epoch's record."""
        if not self.records:
            raise IndexError("History is empty")
        return self.records[-1]

    def column(self, name: str) -> list[Any]:
        return [getattr(r, name) for r in self.records]

    @property
    def loss(self) -> list[float]:
        return self.column("loss")

    @property
    def accuracy(self) -> list[float]:
        return self.column("accuracy")

    @property
    def val_loss(self) -> list[float | None]:
        return self.column("val_loss")

    @property
    def val_accuracy(self) -> list[float | None]:
        return self.column("val_accuracy")

    @property
    def seconds(self) -> list[float]:
        return self.column("seconds")

    def to_dicts(self) -> list[dict[str, Any]]:
        """One plain dict per epoch (JSON-ready)."""
        return [r.to_dict() for r in self.records]


class Evaluation(NamedTuple):
    """Mean loss and accuracy of a model on a dataset."""

    loss: float
    accuracy: float


def check_dataset(X: Any, y: Any, what: str) -> None:
    """Validate an ``(X, y)`` pair before any work, naming ``what`` ("train", "val") in errors."""
    shape_x = tuple(getattr(X, "shape", ()))
    shape_y = tuple(getattr(y, "shape", ()))
    if len(shape_x) < 2:
        raise ValueError(f"{what} X must be an array with a batch axis, got shape {shape_x}")
    if getattr(X, "dtype", np.dtype(object)).kind != "f":
        raise ValueError(f"{what} X must be a floating-point array, got dtype {X.dtype}")
    if len(shape_y) != 1 or getattr(y, "dtype", np.dtype(object)).kind not in "iu":
        raise ValueError(
            f"{what} y must be a 1-D integer label array, got shape {shape_y} "
            f"dtype {getattr(y, 'dtype', type(y).__name__)}"
        )
    if shape_x[0] != shape_y[0]:
        raise ValueError(f"{what} X has {shape_x[0]} samples but y has {shape_y[0]} labels")
    if shape_x[0] == 0:
        raise ValueError(f"{what} set is empty")
    if int(y.min()) < 0:
        raise ValueError(f"{what} y has a negative label {int(y.min())}")


def _check_classes(y_max: int, logits: Any, what: str) -> None:
    classes = logits.shape[1]
    if y_max >= classes:
        raise ValueError(
            f"{what} y has label {y_max} but the model outputs {classes} classes (0..{classes - 1})"
        )


def _resolve(model: Module, spec: str | Device | None) -> Device:
    if spec is None:
        return model.device
    dev = device(spec)
    model.to(dev)
    return dev


def _to_device(dev: Device, X: Any, y: Any) -> tuple[Any, Any, bool]:
    """Move a dataset to ``dev`` once; returns ``(X, y, on_device)``.

    When the data does not fit in device memory it stays on the host and is
    moved batch by batch instead.
    """
    try:
        return dev.asarray(X), dev.asarray(y), True
    except MemoryError:
        return to_host(X), to_host(y), False


def fit(
    model: Module,
    optimizer: Optimizer,
    train: tuple[Any, Any],
    val: tuple[Any, Any] | None = None,
    *,
    epochs: int,
    batch_size: int | None = None,
    device: str | Device | None = None,
    seed: int = 0,
    shuffle: bool = True,
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    eval_batch_size: int = DEFAULT_EVAL_BATCH,
    rng: np.random.Generator | None = None,
    initial_epoch: int = 0,
    stats: Any = None,
) -> History:
    """Train ``model`` with ``optimizer`` and softmax cross-entropy.

    Args:
        model: the network; moved to ``device`` if one is given.
        optimizer: built on ``model``'s parameters.
        train: ``(X, y)``: X ``(N, ...)`` float32, y ``(N,)`` integer labels.
        val: optional ``(X, y)`` evaluated after every epoch.
        epochs: number of passes over ``train``.
        batch_size: minibatch size; None means the full batch.
        device: where to train (``"cpu"``, ``"cuda"``, a Device); None keeps the model's.
        seed: seed of the host generator that shuffles minibatches.
        shuffle: reshuffle every epoch (a full batch is never shuffled: the
            order of a sum does not change the update beyond rounding).
        on_epoch: called with each :class:`EpochRecord`; returning True stops training.
        on_batch: called with each minibatch's size after its update (progress bars).
        eval_batch_size: batch size for the validation passes.
        rng: the shuffling generator to use instead of ``Generator(seed)``; pass one
            restored from a checkpoint to resume exactly. Its state after each epoch
            is the state the next epoch starts from.
        initial_epoch: epochs already done (when resuming); training runs epochs
            ``initial_epoch + 1 … epochs``.
        stats: None (off, the default), True (statistics on up to 512 training
            samples) or a :class:`cnnx.inspect.TrainingStats`; once per epoch it adds
            one forward and backward pass on its probe and stores the result in
            ``EpochRecord.stats``.

    Returns:
        A :class:`History` with one record per epoch run.

    Raises:
        TrainingDiverged: the epoch's loss is NaN or infinite. Its ``layer`` attribute names
            the first layer that produced a non-finite value and ``direction`` says
            whether in the forward or the backward pass (both None when not found).
        ValueError: malformed data, or labels the model cannot output.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not 0 <= initial_epoch < epochs:
        raise ValueError(f"initial_epoch must be in [0, epochs={epochs}), got {initial_epoch!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    X, y = train
    check_dataset(X, y, "train")
    y_max = int(y.max())
    if val is not None:
        check_dataset(val[0], val[1], "val")
    dev = _resolve(model, device)
    with dev, ignore_float_errors():
        Xd, yd, resident = _to_device(dev, X, y)
        val_d = None
        if val is not None:
            val_d = _to_device(dev, val[0], val[1])
        epoch_range = range(initial_epoch + 1, epochs + 1)
        shuffler = rng if rng is not None else np.random.default_rng(seed)
        if stats is not None and stats is not False and not hasattr(model, "trace"):
            raise ValueError(
                f"fit(stats=...) needs a Sequential model (it records each layer); "
                f"got {type(model).__name__}"
            )
        if stats is True:
            from cnnx.inspect import TrainingStats

            stats = TrainingStats(X, y)
        elif stats is False:
            stats = None
        return _fit_loop(
            model, optimizer, dev, Xd, yd, resident, y_max, val_d, epoch_range, batch_size,
            shuffler, shuffle, on_epoch, on_batch, eval_batch_size, stats,
        )  # fmt: skip


def _fit_loop(
    model: Module,
    optimizer: Optimizer,
    dev: Device,
    Xd: Any,
    yd: Any,
    resident: bool,
    y_max: int,
    val_d: tuple[Any, Any, bool] | None,
    epochs: range,
    batch_size: int | None,
    rng: np.random.Generator,
    shuffle: bool,
    on_epoch: Callable[[EpochRecord], bool | None] | None,
    on_batch: Callable[[int], None] | None,
    eval_batch_size: int,
    stats: Any = None,
) -> History:
    n = int(Xd.shape[0])
    bs = n if batch_size is None else min(int(batch_size), n)
    loss_fn = SoftmaxCrossEntropy(check_targets=False)  # labels were checked once, above
    history = History()
    last_finite: tuple[int, float] | None = None
    classes_checked = False
    start_weights: list[Any] | None = None
    for epoch in epochs:
        start_time = time.perf_counter()
        model.train()
        if stats is not None:
            stats.begin_epoch(model)
        # The weights the epoch starts from: a small copy, kept so that a divergence
        # can be traced to the layer that first produced a non-finite value.
        previous_weights, start_weights = start_weights, [p.data.copy() for p in model.parameters()]
        order = rng.permutation(n) if shuffle and bs < n else None
        if order is not None and resident:
            order = dev.asarray(order)
        loss_sum: Any = 0.0
        correct: Any = 0
        for start in range(0, n, bs):
            if order is None:
                xb, yb = Xd[start : start + bs], yd[start : start + bs]
            else:
                idx = order[start : start + bs]
                xb, yb = Xd[idx], yd[idx]
            if not resident:
                xb, yb = dev.asarray(xb), dev.asarray(yb)
            logits = model(xb)
            if not classes_checked:
                _check_classes(y_max, logits, "train")
                classes_checked = True
            loss = loss_fn(logits, yb)
            optimizer.zero_grad()
            model.backward_params(loss_fn.backward())
            optimizer.step()
            count = int(yb.shape[0])
            loss_sum = loss_sum + loss * count
            correct = correct + (logits.argmax(axis=1) == yb).sum()
            if on_batch is not None:
                on_batch(count)
        mean_loss = float(loss_sum) / n
        if not math.isfinite(mean_loss):
            if last_finite is None:
                detail = "no epoch finished with a finite loss"
            else:
                detail = f"last finite loss {last_finite[1]:.6g} in epoch {last_finite[0]}"
            first_idx = order[:bs] if order is not None else slice(0, bs)
            xb, yb = Xd[first_idx], yd[first_idx]
            if not resident:
                xb, yb = dev.asarray(xb), dev.asarray(yb)
            where = locate_non_finite(model, start_weights, previous_weights, xb, yb)
            error = TrainingDiverged(
                f"training diverged in epoch {epoch}: the loss became {mean_loss} ({detail})"
                f"{where.describe()}; try a smaller learning rate",
                epoch=epoch,
                last_finite_loss=None if last_finite is None else last_finite[1],
            )
            error.layer, error.direction = where.layer, where.direction
            raise error
        last_finite = (epoch, mean_loss)
        accuracy = float(correct) / n
        val_loss = val_accuracy = None
        if val_d is not None:
            result = _evaluate(model, dev, val_d[0], val_d[1], val_d[2], eval_batch_size)
            val_loss, val_accuracy = result.loss, result.accuracy
        epoch_stats = stats.end_epoch(model) if stats is not None else None
        record = EpochRecord(
            epoch,
            mean_loss,
            accuracy,
            val_loss,
            val_accuracy,
            time.perf_counter() - start_time,
            epoch_stats,
        )
        history.append(record)
        if on_epoch is not None and on_epoch(record):
            break
    return history


class NonFiniteSite(NamedTuple):
    """Where a non-finite value first appeared: layer name, its repr, the pass, and how found."""

    layer: str | None
    description: str | None
    direction: str | None  # "forward" or "backward"
    replay: str = ""

    def describe(self) -> str:
        if self.layer is None:
            return ""
        return (
            f"; the first non-finite value came from layer {self.layer} "
            f"({self.description}) in the {self.direction} pass{self.replay}"
        )


def _finite(arrays: list[Any]) -> bool:
    return all(bool(get_array_module(a).isfinite(a).all()) for a in arrays)


def locate_non_finite(
    model: Module,
    start_weights: list[Any],
    previous_weights: list[Any] | None,
    xb: Any,
    yb: Any,
) -> NonFiniteSite:
    """Replay one minibatch and find the first layer whose output or gradient is not finite.

    The replay uses the weights the diverging epoch started from (for a full-batch run
    that is exactly the step whose loss was not finite). When those weights are already
    non-finite, the previous epoch's step made them so, and it is replayed instead from
    the weights that epoch started from. Failing both, the current weights are tried.
    The model's weights are restored afterwards.
    """
    trace = getattr(model, "trace", None)
    if trace is None:
        return NonFiniteSite(None, None, None)
    params = model.parameters()
    current = [p.data.copy() for p in params]
    candidates = []
    if _finite(start_weights):
        candidates.append((start_weights, ""))
    elif previous_weights is not None:
        note = (
            " of the previous epoch's step (the weights this epoch started from were "
            "already non-finite: that step's update made them so)"
        )
        candidates.append((previous_weights, note))
    candidates.append((current, " (replayed with the weights at the end of the epoch)"))
    try:
        for weights, note in candidates:
            for p, w in zip(params, weights, strict=True):
                p.data[...] = w
            site = _first_non_finite(model, trace(xb, yb))
            if site.layer is not None:
                return site._replace(replay=note)
    finally:
        for p, w in zip(params, current, strict=True):
            p.data[...] = w
    return NonFiniteSite(None, None, None)


def _first_non_finite(model: Module, trace: Any) -> NonFiniteSite:
    layers = dict(model.layers())
    for name, out in trace.outputs.items():
        if not np.isfinite(out).all():
            return NonFiniteSite(name, repr(layers[name]), "forward")
    if trace.grads is not None:
        names = list(trace.grads)
        if not np.isfinite(trace.grads[names[-1]]).all():
            return NonFiniteSite("loss", "SoftmaxCrossEntropy", "backward")
        # Backward runs last layer first; layer i's backward produces the gradient for
        # layer i − 1's output (or the input) and for layer i's own parameters.
        for i in reversed(range(len(names))):
            name = names[i]
            produced = [trace.grads[names[i - 1]] if i > 0 else trace.input_grad]
            produced += [
                g for pname, g in (trace.param_grads or {}).items()
                if pname.rsplit(".", 1)[0] == name
            ]  # fmt: skip
            if any(g is not None and not np.isfinite(g).all() for g in produced):
                return NonFiniteSite(name, repr(layers[name]), "backward")
    return NonFiniteSite(None, None, None)


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, start + batch_size)


def _evaluate(
    model: Module,
    dev: Device,
    Xd: Any,
    yd: Any,
    resident: bool,
    batch_size: int,
    y_max: int | None = None,
) -> Evaluation:
    was_training = model.training
    model.eval()
    loss_fn = SoftmaxCrossEntropy(check_targets=False)
    n = int(Xd.shape[0])
    loss_sum: Any = 0.0
    correct: Any = 0
    try:
        for part in _batches(n, batch_size):
            xb, yb = Xd[part], yd[part]
            if not resident:
                xb, yb = dev.asarray(xb), dev.asarray(yb)
            logits = model(xb)
            if y_max is not None:
                _check_classes(y_max, logits, "evaluation")
                y_max = None
            loss_sum = loss_sum + loss_fn(logits, yb) * int(yb.shape[0])
            correct = correct + (logits.argmax(axis=1) == yb).sum()
    finally:
        model.train(was_training)
    return Evaluation(float(loss_sum) / n, float(correct) / n)


def evaluate(
    model: Module,
    X: Any,
    y: Any,
    device: str | Device | None = None,
    batch_size: int = DEFAULT_EVAL_BATCH,
) -> Evaluation:
    """Mean loss and accuracy of ``model`` on ``(X, y)``, in eval mode, in batches.

    Args:
        model: the network (moved to ``device`` if given).
        X: ``(N, ...)`` float inputs; y: ``(N,)`` integer labels.
        device: where to run; None keeps the model's device.
        batch_size: samples per forward pass, so memory stays bounded for any N.

    Returns:
        ``Evaluation(loss, accuracy)``, a named tuple of Python floats.
    """
    check_dataset(X, y, "evaluation")
    dev = _resolve(model, device)
    with dev:
        Xd, yd, resident = _to_device(dev, X, y)
        return _evaluate(model, dev, Xd, yd, resident, batch_size, y_max=int(y.max()))


def predict_proba(
    model: Module,
    X: Any,
    device: str | Device | None = None,
    batch_size: int = DEFAULT_EVAL_BATCH,
) -> np.ndarray:
    """Class probabilities ``(N, classes)`` float32 on the host, computed in eval-mode batches."""
    dev = _resolve(model, device)
    was_training = model.training
    model.eval()
    parts = []
    try:
        with dev:
            for part in _batches(int(X.shape[0]), batch_size):
                parts.append(to_host(F.softmax(model(dev.asarray(X[part])))))
    finally:
        model.train(was_training)
    return np.concatenate(parts, axis=0)
