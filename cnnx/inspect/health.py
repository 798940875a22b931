"""A health report for a network on data: what each layer outputs, and what would change.

Per layer (from :meth:`cnnx.nn.Sequential.trace`): the mean and standard deviation
of its output, its *dead* units (a ReLU channel or output that is 0 for every sample
and position) and its *saturated* units (a Sigmoid output below 0.01 or above 0.99, a
Tanh output beyond ±0.99, for every sample and position). Per parameter: the norm of
the weights, of the gradient of the mean loss on the data, and, when an optimizer is
given, the update-to-weight ratio ``‖Δθ‖ / ‖θ‖`` of the step it would take next.

A *unit* is one channel of a 4-D output ``(N, C, H, W)`` or one feature of a 2-D
output ``(N, F)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cnnx.backends import to_host
from cnnx.nn.activation import ReLU, Sigmoid, Tanh
from cnnx.nn.module import Module, Sequential

SIGMOID_EDGE = 0.01  # a sigmoid output within this of 0 or 1 has gradient y(1−y) < 0.0099
TANH_EDGE = 0.99  # |tanh| above this has gradient 1 − y² < 0.02
LARGE_UPDATE = 0.1  # one step moving a weight matrix by more than 10 % of its norm
DEFAULT_BATCH = 256


@dataclass
class LayerHealth:
    """One layer's output statistics over the data.

    Attributes:
        name: dotted layer name; kind: the layer's class name; description: its repr.
        shape: one sample's output shape.
        mean, std: over all samples and positions (float64 accumulation).
        units: number of units (channels or features).
        dead: indices of units that are exactly 0 for every sample (ReLU only, else None).
        saturated: indices of units saturated for every sample (Sigmoid/Tanh, else None).
        non_finite: the output held NaN or ±inf somewhere.
        grad_rms: root mean square of ``dL/d(output)`` (None without labels).
    """

    name: str
    kind: str
    description: str
    shape: tuple[int, ...]
    mean: float
    std: float
    units: int
    dead: list[int] | None = None
    saturated: list[int] | None = None
    non_finite: bool = False
    grad_rms: float | None = None


@dataclass
class ParamHealth:
    """One parameter's size, gradient and next update.

    Attributes:
        name: dotted name (``"0.weight"``); shape: its shape.
        weight_norm: ‖θ‖₂. grad_norm: ‖dL/dθ‖₂ of the mean loss on the data (None
        without labels). update_ratio: ‖Δθ‖₂ / ‖θ‖₂ of the optimizer's next step on
        that gradient (None without an optimizer or labels).
    """

    name: str
    shape: tuple[int, ...]
    weight_norm: float
    grad_norm: float | None = None
    update_ratio: float | None = None


@dataclass
class HealthReport:
    """The result of :func:`health_report`: per-layer and per-parameter rows, and warnings."""

    layers: list[LayerHealth]
    params: list[ParamHealth]
    samples: int
    loss: float | None = None
    accuracy: float | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def format(self) -> str:
        """The report as two tables and a numbered list of warnings."""
        return format_report(self)


class _LayerAccumulator:
    """Running sums for one layer's output, one batch at a time."""

    def __init__(self, name: str, layer: Module):
        self.name = name
        self.layer = layer
        self.total = 0.0
        self.total_sq = 0.0
        self.count = 0
        self.shape: tuple[int, ...] = ()
        self.alive: np.ndarray | None = None  # unit was non-zero somewhere
        self.unsaturated: np.ndarray | None = None  # unit was away from its asymptotes somewhere
        self.non_finite = False
        self.grad_sq = 0.0
        self.grad_count = 0

    def add(self, out: np.ndarray, grad: np.ndarray | None) -> None:
        self.shape = tuple(out.shape[1:])
        finite = np.isfinite(out)
        if not finite.all():
            self.non_finite = True
            out = np.where(finite, out, 0.0)
        values = out.astype(np.float64)
        self.total += float(values.sum())
        self.total_sq += float((values * values).sum())
        self.count += values.size
        per_unit_axes = (0, *range(2, out.ndim))
        if out.ndim >= 2:
            alive = (out != 0).any(axis=per_unit_axes)
            self.alive = alive if self.alive is None else self.alive | alive
            if isinstance(self.layer, Sigmoid | Tanh):
                if isinstance(self.layer, Sigmoid):
                    away = (out > SIGMOID_EDGE) & (out < 1 - SIGMOID_EDGE)
                else:
                    away = np.abs(out) < TANH_EDGE
                away = away.any(axis=per_unit_axes)
                self.unsaturated = away if self.unsaturated is None else self.unsaturated | away
        if grad is not None:
            g = grad.astype(np.float64)
            self.grad_sq += float((g * g).sum())
            self.grad_count += g.size

    def result(self) -> LayerHealth:
        mean = self.total / self.count if self.count else 0.0
        var = max(self.total_sq / self.count - mean * mean, 0.0) if self.count else 0.0
        units = int(self.alive.size) if self.alive is not None else 1
        dead = None
        if isinstance(self.layer, ReLU) and self.alive is not None:
            dead = [int(i) for i in np.flatnonzero(~self.alive)]
        saturated = None
        if self.unsaturated is not None:
            saturated = [int(i) for i in np.flatnonzero(~self.unsaturated)]
        grad_rms = math.sqrt(self.grad_sq / self.grad_count) if self.grad_count else None
        return LayerHealth(
            self.name,
            type(self.layer).__name__,
            repr(self.layer).replace("\n", " "),
            self.shape,
            mean,
            math.sqrt(var),
            units,
            dead,
            saturated,
            self.non_finite,
            grad_rms,
        )


def _norm(a: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.square(a.astype(np.float64)))))


def layer_statistics(
    model: Sequential,
    X: Any,
    y: Any = None,
    *,
    batch_size: int = DEFAULT_BATCH,
) -> tuple[list[LayerHealth], dict[str, np.ndarray] | None, float | None, float | None]:
    """Stream ``X`` through ``model`` in batches and summarise every layer.

    Returns:
        ``(layers, param_grads, loss, accuracy)``; the last three are None without ``y``.
        ``param_grads`` are the gradients of the mean loss over all of ``X``.
    """
    n = int(X.shape[0])
    if n == 0:
        raise ValueError("the health report needs at least one sample")
    accumulators = [_LayerAccumulator(name, layer) for name, layer in model.layers()]
    grads: dict[str, np.ndarray] | None = None
    loss_sum = 0.0
    correct = 0
    for start in range(0, n, batch_size):
        xb = X[start : start + batch_size]
        yb = None if y is None else y[start : start + batch_size]
        trace = model.trace(xb, yb)
        for acc in accumulators:
            acc.add(trace.outputs[acc.name], None if trace.grads is None else trace.grads[acc.name])
        if yb is not None:
            weight = int(xb.shape[0]) / n
            assert trace.param_grads is not None and trace.loss is not None
            if grads is None:
                grads = {k: v.astype(np.float64) * weight for k, v in trace.param_grads.items()}
            else:
                for k, v in trace.param_grads.items():
                    grads[k] += v * weight
            loss_sum += trace.loss * int(xb.shape[0])
            logits = trace.outputs[accumulators[-1].name]
            correct += int((logits.argmax(axis=1) == to_host(yb)).sum())
    layers = [acc.result() for acc in accumulators]
    if y is None:
        return layers, None, None, None
    return layers, grads, loss_sum / n, correct / n


def next_updates(
    model: Module, optimizer: Any, grads: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The change ``Δθ`` one ``optimizer.step()`` would make with gradients ``grads``.

    The model's weights, the parameters' ``.grad`` and the optimizer's state are restored
    afterwards, so nothing changes.
    """
    params = dict(model.named_parameters())
    saved_state = optimizer.state_dict()
    saved_weights = {k: p.data.copy() for k, p in params.items()}
    saved_grads = {k: p.grad.copy() for k, p in params.items()}
    try:
        for k, p in params.items():
            p.grad[...] = _device_like(p.grad, grads[k])
        optimizer.step()
        return {k: to_host(p.data - saved_weights[k]).astype(np.float64) for k, p in params.items()}
    finally:
        for k, p in params.items():
            p.data[...] = saved_weights[k]
            p.grad[...] = saved_grads[k]
        optimizer.load_state_dict(saved_state)


def _device_like(like: Any, host: np.ndarray) -> Any:
    from cnnx.backends import device_of

    return device_of(like).asarray(host.astype(like.dtype))


def _final_relus(model: Sequential) -> set[str]:
    """ReLUs after which no layer holds parameters: they act directly on the class scores."""
    names = []
    for name, layer in reversed(list(model.layers())):
        if layer.parameters():
            break
        if isinstance(layer, ReLU):
            names.append(name)
    return set(names)


def _units(indices: list[int]) -> str:
    if len(indices) == 1:
        return f"unit {indices[0]}"
    return "units " + ", ".join(str(i) for i in indices)


def diagnose(
    model: Sequential,
    layers: list[LayerHealth],
    params: list[ParamHealth],
    class_names: Sequence[str] | None = None,
) -> list[str]:
    """Warnings in plain words for what the numbers show (empty when nothing is wrong)."""
    warnings: list[str] = []
    final = _final_relus(model)
    for row in layers:
        where = f"layer {row.name} ({row.kind})"
        if row.non_finite:
            warnings.append(
                f"{where} outputs NaN or infinity for some samples: the weights or the inputs "
                "have blown up (a learning rate that is too large is the usual cause)."
            )
        if row.dead:
            if row.name in final:
                for unit in row.dead:
                    label = (
                        f"class {unit} ({class_names[unit]!r})"
                        if class_names and unit < len(class_names)
                        else f"class {unit}"
                    )
                    warnings.append(
                        f"{where} sits on the class scores, and its output {unit} is 0 for "
                        f"every sample: {label} can never win (at best it ties), so the network "
                        f"can never predict it. A ReLU that outputs 0 passes no gradient, so "
                        f"training cannot bring it back; remove the ReLU on the scores, or use "
                        f"another seed or a smaller learning rate."
                    )
            else:
                what = "channel" if len(row.shape) == 3 else "unit"
                if len(row.dead) == 1:
                    warnings.append(
                        f"{where}: {what} {row.dead[0]} of {row.units} is 0 for every sample: "
                        f"it is 'dead', passes nothing on and gets no gradient, so it has "
                        f"stopped learning."
                    )
                else:
                    warnings.append(
                        f"{where}: {what}s {', '.join(str(i) for i in row.dead)} "
                        f"({len(row.dead)} of {row.units}) are 0 for every sample: they are "
                        f"'dead', pass nothing on and get no gradient, so they have stopped "
                        f"learning."
                    )
        if row.saturated:
            warnings.append(
                f"{where}: {_units(row.saturated)} of {row.units} stay saturated (output "
                f"pinned near its limit) for every sample; there the gradient is nearly 0, "
                f"so the layers before learn almost nothing through them."
            )
    for p in params:
        if p.grad_norm is not None and not math.isfinite(p.grad_norm):
            warnings.append(f"parameter {p.name}: its gradient is NaN or infinite.")
        elif p.grad_norm == 0.0 and p.weight_norm > 0:
            warnings.append(
                f"parameter {p.name} gets exactly zero gradient on this data: it cannot learn."
            )
        if p.update_ratio is not None and len(p.shape) > 1 and p.update_ratio > LARGE_UPDATE:
            warnings.append(
                f"parameter {p.name}: the next step would change it by {p.update_ratio:.0%} of "
                f"its size; steps this large make training jump around (try a smaller "
                f"learning rate)."
            )
    return warnings


def health_report(
    model: Sequential,
    X: Any,
    y: Any = None,
    *,
    optimizer: Any = None,
    class_names: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> HealthReport:
    """Check a model on data: per-layer output statistics, gradients and warnings.

    Args:
        model: a Sequential (any registered model).
        X: ``(N, C, H, W)`` float inputs (host or device).
        y: ``(N,)`` integer labels; without them there are no gradients.
        optimizer: the model's optimizer (e.g. ``Checkpoint.build_optimizer(model)``); when
            given, the update-to-weight ratio of its next step on the full-data gradient is
            computed (and then undone: the model and optimizer are left as they were).
        class_names: names for the warnings (``["1", "2", "3"]``).
        batch_size: samples per forward/backward pass.

    Returns:
        A :class:`HealthReport`. Parameters' ``.grad`` are left untouched.
    """
    layers, grads, loss, accuracy = layer_statistics(model, X, y, batch_size=batch_size)
    updates = None
    if optimizer is not None and grads is not None:
        updates = next_updates(model, optimizer, grads)
    params = []
    for name, p in model.named_parameters():
        weights = to_host(p.data)
        weight_norm = _norm(weights)
        grad_norm = None if grads is None else _norm(grads[name])
        ratio = None
        if updates is not None and weight_norm > 0:
            ratio = _norm(updates[name]) / weight_norm
        params.append(ParamHealth(name, tuple(p.shape), weight_norm, grad_norm, ratio))
    report = HealthReport(layers, params, int(X.shape[0]), loss, accuracy)
    report.warnings = diagnose(model, layers, params, class_names)
    return report


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)).rstrip())
    return out


def format_report(report: HealthReport) -> str:
    """Render a :class:`HealthReport` as text."""
    lines = []
    head = f"{report.samples} samples"
    if report.loss is not None:
        head += f", loss {report.loss:.4f}, accuracy {report.accuracy:.4f}"
    lines.append(head)
    lines.append("")
    rows = []
    for r in report.layers:
        dead = "-" if r.dead is None else f"{len(r.dead)}/{r.units}"
        sat = "-" if r.saturated is None else f"{len(r.saturated)}/{r.units}"
        rows.append(
            (
                r.name,
                r.description,
                "×".join(str(s) for s in r.shape),
                _fmt(r.mean),
                _fmt(r.std),
                dead,
                sat,
                _fmt(r.grad_rms, ".3g"),
            )
        )
    header = ("#", "layer", "output", "mean", "std", "dead", "saturated", "grad rms")
    lines += _table(header, rows)
    lines.append("")
    prow = [
        (
            p.name,
            "×".join(str(s) for s in p.shape),
            _fmt(p.weight_norm),
            _fmt(p.grad_norm, ".3g"),
            _fmt(p.update_ratio, ".3g"),
        )
        for p in report.params
    ]
    lines += _table(("parameter", "shape", "|w|", "|grad|", "update/|w|"), prow)
    lines.append("")
    if report.warnings:
        lines.append(f"{len(report.warnings)} warning(s):")
        for i, text in enumerate(report.warnings, 1):
            lines.append(f"  {i}. {text}")
    else:
        lines.append("no warnings: no dead or saturated units, gradients finite and non-zero.")
    return "\n".join(lines)
