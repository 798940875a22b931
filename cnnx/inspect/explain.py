"""One sample's trip through a network, forward and backward, as numbered steps.

The notation is the lecture slides' (research text 001, section 5): ``Z_conv =
Σ(X_region ⊙ W_conv) + b_conv``, ``A_relu = max(0, Z)``, ``A_pool = max(window)``,
``Z_dense = A_flat·Wᵀ + b``, ``ŷ = softmax(Z)``, ``L = −log ŷ[label]``, then
``∂L/∂Z = ŷ − y`` and each gradient back to the first kernel. Every number comes
from the library's own forward and backward pass (:meth:`Sequential.trace`); the
arithmetic printed beside it (the products of a patch and a kernel, a window's
maximum) is the same computation spelled out, so a reader can check it by hand.
Small layers are printed in full, large ones summarised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnx.backends import to_host
from cnnx.nn import AvgPool2D, Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sigmoid, Tanh
from cnnx.nn.module import Sequential, Trace

FULL_VALUES = 64  # arrays up to this many numbers are printed in full
FULL_POSITIONS = 16  # layers with up to this many outputs show every computation
FULL_TERMS = 27  # a patch up to this many products is written out term by term


def num(value: float, digits: int = 5) -> str:
    """A number as the slides write it: integers bare, else ``digits`` significant digits."""
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if v == round(v) and abs(v) < 1e9:
        return str(round(v))
    return f"{v:.{digits}g}"


def factor(value: float) -> str:
    """A number inside a product: negative ones in parentheses, ``11·(-0.5)``."""
    text = num(value)
    return f"({text})" if text.startswith("-") else text


def array_text(a: Any, limit: int = FULL_VALUES, digits: int = 5) -> str:
    """Nested lists of :func:`num` for small arrays; shape and range for large ones."""
    a = np.asarray(a)
    if a.size <= limit:
        if a.ndim == 0:
            return num(a)
        return _nested(a, digits)
    shape = "×".join(str(s) for s in a.shape)
    return (
        f"({shape} values, min {num(a.min())}, max {num(a.max())}, mean {num(a.mean())}, "
        f"{int((a != 0).sum())} non-zero)"
    )


def _nested(a: np.ndarray, digits: int = 5) -> str:
    if a.ndim == 1:
        return "[" + ", ".join(num(v, digits) for v in a) + "]"
    return "[" + ", ".join(_nested(row, digits) for row in a) + "]"


@dataclass
class Explanation:
    """The numbered steps, and the trace they were read from.

    Attributes:
        steps: one string per step, already numbered.
        trace: the forward/backward :class:`~cnnx.nn.module.Trace` of the sample.
        updated: with an ``lr``, each parameter after one SGD step (host arrays).
    """

    steps: list[str]
    trace: Trace
    updated: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(self.steps)


class _Writer:
    def __init__(self) -> None:
        self.steps: list[str] = []

    def step(self, title: str, *lines: str) -> None:
        number = len(self.steps) + 1
        body = "".join(f"\n     {line}" for line in lines if line)
        self.steps.append(f"{number:>2}. {title}{body}")


def _patch(x: np.ndarray, layer: Conv2D, i: int, j: int) -> np.ndarray:
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    return x[:, i * sh : i * sh + kh, j * sw : j * sw + kw]


def _padded(x: np.ndarray, layer: Conv2D) -> np.ndarray:
    ph, pw = layer.padding
    return np.pad(x, ((0, 0), (ph, ph), (pw, pw))) if ph or pw else x


def _products(patch: np.ndarray, kernel: np.ndarray) -> str:
    """``(1·1 + 2·0 + 0·1) + (3·0 + ...)``: one bracket per kernel row, per channel."""
    groups = []
    for c in range(patch.shape[0]):
        for r in range(patch.shape[1]):
            terms = " + ".join(
                f"{factor(a)}·{factor(b)}" for a, b in zip(patch[c, r], kernel[c, r], strict=True)
            )
            groups.append(f"({terms})")
    return " + ".join(groups)


def _conv_forward(w: _Writer, name: str, layer: Conv2D, x: np.ndarray, z: np.ndarray) -> None:
    weight = to_host(layer.weight.data)
    bias = (
        to_host(layer.bias.data)
        if layer.bias is not None
        else np.zeros(weight.shape[0], dtype=weight.dtype)
    )
    xp = _padded(x, layer)
    out_c, oh, ow = z.shape
    lines = ["Z_conv = Σ(X_region ⊙ W_conv) + b_conv"]
    if weight.size <= FULL_VALUES:
        for o in range(out_c):
            shown = weight[o, 0] if weight.shape[1] == 1 else weight[o]
            lines.append(f"W[{o}] = {array_text(shown)}, b[{o}] = {num(bias[o])}")
    else:
        lines.append(f"W: {array_text(weight)}; b: {array_text(bias)}")
    terms = weight[0].size
    every = z.size <= FULL_POSITIONS
    for o in range(out_c):
        if every:
            positions = [(i, j) for i in range(oh) for j in range(ow)]
        else:
            flat = int(np.argmax(z[o]))
            positions = [divmod(flat, ow)]
        for i, j in positions:
            patch = _patch(xp, layer, i, j)
            if terms <= FULL_TERMS:
                calc = f"{_products(patch, weight[o])} + {factor(bias[o])}"
            else:
                calc = f"Σ of {terms} products {num((patch * weight[o]).sum())} + {factor(bias[o])}"
            where = f"Z[{o}, {i}, {j}]" if out_c > 1 else f"Z[{i}, {j}]"
            suffix = "" if every else "   (the largest of this channel)"
            lines.append(f"{where} = {calc} = {num(z[o, i, j])}{suffix}")
    lines.append(f"Z_conv = {array_text(z if out_c > 1 else z[0])}")
    w.step(f"Convolution, layer {name} {layer!r}: {_shape(x)} → {_shape(z)}", *lines)


def _shape(a: np.ndarray) -> str:
    return "(" + "×".join(str(s) for s in a.shape) + ")"


def _pool_forward(w: _Writer, name: str, layer: Any, x: np.ndarray, z: np.ndarray) -> None:
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    is_max = isinstance(layer, MaxPool2D)
    op = "max" if is_max else "mean"
    lines = [f"A_pool = {op}(window of {kh}×{kw})"]
    c_n, oh, ow = z.shape
    every = z.size <= FULL_POSITIONS
    for c in range(c_n):
        positions = (
            [(i, j) for i in range(oh) for j in range(ow)]
            if every
            else [divmod(int(np.argmax(z[c])), ow)]
        )
        for i, j in positions:
            window = x[c, i * sh : i * sh + kh, j * sw : j * sw + kw]
            where = f"[{c}, {i}, {j}]" if c_n > 1 else f"[{i}, {j}]"
            text = f"{op}({array_text(window)}) = {num(z[c, i, j])}"
            if is_max:
                r, s = divmod(int(np.argmax(window)), kw)
                text += f"   (at row {i * sh + r}, column {j * sw + s} of the input)"
            lines.append(f"A_pool{where} = {text}")
    lines.append(f"A_pool = {array_text(z if c_n > 1 else z[0])}")
    kind = "Max pooling" if is_max else "Average pooling"
    w.step(f"{kind}, layer {name} {layer!r}: {_shape(x)} → {_shape(z)}", *lines)


def _linear_forward(w: _Writer, name: str, layer: Linear, a: np.ndarray, z: np.ndarray) -> None:
    weight = to_host(layer.weight.data)
    bias = (
        to_host(layer.bias.data)
        if layer.bias is not None
        else np.zeros(weight.shape[0], dtype=weight.dtype)
    )
    lines = ["Z_dense = A_flat · W_denseᵀ + b_dense"]
    if weight.size <= FULL_VALUES:
        lines.append(f"{array_text(a)} @ {array_text(weight.T)} + {array_text(bias)}")
        if a.size <= 8:
            parts = [
                " + ".join(
                    f"{factor(ai)}·{factor(wi)}" for ai, wi in zip(a, weight[k], strict=True)
                )
                + f" + {factor(bias[k])}"
                for k in range(weight.shape[0])
            ]
            lines.append("= [" + ", ".join(parts) + "]")
    else:
        lines.append(f"W: {array_text(weight)}; b: {array_text(bias)} ({a.size} products each)")
    lines.append(f"Z_dense = {array_text(z)}")
    w.step(f"Dense, layer {name} {layer!r}: {_shape(a)} → {_shape(z)}", *lines)


def _elementwise_forward(w: _Writer, name: str, layer: Any, z: np.ndarray, a: np.ndarray) -> None:
    if isinstance(layer, ReLU):
        formula = "A_relu = max(0, Z)"
        negative = int((z < 0).sum())
        note = (
            "every value is above 0, so nothing changes"
            if negative == 0
            else f"{negative} of {z.size} values were below 0 and become 0"
        )
    elif isinstance(layer, Sigmoid):
        formula, note = "A = 1 / (1 + e^(−Z))", ""
    elif isinstance(layer, Tanh):
        formula, note = "A = tanh(Z)", ""
    else:
        formula, note = f"A = {type(layer).__name__}(Z)", ""
    shown = a if a.ndim != 3 or a.shape[0] > 1 else a[0]
    w.step(
        f"{type(layer).__name__}, layer {name}: {_shape(z)}",
        formula,
        note,
        f"A = {array_text(shown)}",
    )


def _softmax_steps(w: _Writer, z: np.ndarray, label: int | None, names: Sequence[str]) -> None:
    shift = float(z.max()) if float(z.max()) > 80 else 0.0
    e = np.exp(z.astype(np.float64) - shift)
    probs = e / e.sum()
    base = f"e^(z − {num(shift)})" if shift else "e^z"
    w.step(
        "Softmax: ŷ_i = e^(z_i) / Σ_j e^(z_j)",
        f"{base} = [" + ", ".join(f"e^{num(v)} ≈ {num(x)}" for v, x in zip(z, e, strict=True))
        + "]",
        f"Σ = {num(e.sum())}",
        f"ŷ = {array_text(probs)}",
        f"the network predicts class {int(np.argmax(probs))} ({names[int(np.argmax(probs))]!r}) "
        f"with probability {num(probs.max())}",
    )  # fmt: skip
    if label is not None:
        p = probs[label]
        w.step(
            "Cross-entropy loss: L = −Σ y_i log(ŷ_i) = −log(ŷ[label])",
            f"label {label} ({names[label]!r}): L = −log({num(p)}) = {num(-math.log(p))}",
        )


def explain_sample(
    model: Sequential,
    x: Any,
    label: int | None = None,
    *,
    class_names: Sequence[str] | None = None,
    lr: float | None = None,
) -> Explanation:
    """Narrate one sample forward (and, with a label, backward; with ``lr``, one SGD step).

    Args:
        model: a Sequential of Conv2D, ReLU/Sigmoid/Tanh, pooling, Flatten and Linear layers
            (other layers are shown by their output only).
        x: one sample ``(C, H, W)`` or a batch of one ``(1, C, H, W)``.
        label: the true class, for the loss and the backward pass.
        class_names: display names of the classes.
        lr: show the SGD update ``θ − lr·∂L/∂θ`` of every parameter (the model is not changed).

    Returns:
        An :class:`Explanation`.
    """
    x = np.asarray(to_host(x))
    if x.ndim == 3:
        x = x[None]
    if x.shape[0] != 1:
        raise ValueError(f"explain_sample takes one sample, got a batch of {x.shape[0]}")
    target = None if label is None else np.array([int(label)])
    trace = model.trace(x.astype(to_host(model.parameters()[0].data).dtype), target)
    layers = list(model.layers())
    logits = trace.outputs[layers[-1][0]][0]
    names = list(class_names) if class_names else [str(k) for k in range(logits.size)]
    w = _Writer()
    w.step(f"Input X {_shape(x[0])}", f"X = {array_text(x[0] if x.shape[1] > 1 else x[0, 0])}")
    previous = x[0]
    for name, layer in layers:
        out = trace.outputs[name][0]
        if isinstance(layer, Conv2D):
            _conv_forward(w, name, layer, previous, out)
        elif isinstance(layer, MaxPool2D | AvgPool2D):
            _pool_forward(w, name, layer, previous, out)
        elif isinstance(layer, Linear):
            _linear_forward(w, name, layer, previous, out)
        elif isinstance(layer, Flatten):
            w.step(
                f"Flatten, layer {name}: {_shape(previous)} → {_shape(out)}",
                f"A_flat = reshape(A) = {array_text(out)}",
            )
        elif isinstance(layer, ReLU | Sigmoid | Tanh):
            _elementwise_forward(w, name, layer, previous, out)
        else:
            w.step(f"{layer!r}, layer {name}: {_shape(out)}", f"output {array_text(out)}")
        previous = out
    _softmax_steps(w, logits, label, names)
    explanation = Explanation(w.steps, trace)
    if label is None or trace.grads is None:
        return explanation
    _backward_steps(w, model, x[0], trace, label)
    if lr is not None:
        explanation.updated = _sgd_steps(w, model, trace, lr)
    explanation.steps = w.steps
    return explanation


def _backward_steps(w: _Writer, model: Sequential, x: np.ndarray, trace: Trace, label: int):
    assert trace.grads is not None and trace.param_grads is not None
    layers = list(model.layers())
    names = [n for n, _ in layers]
    logits_name = names[-1]
    probs = trace.outputs[logits_name][0].astype(np.float64)
    probs = np.exp(probs - probs.max())
    probs /= probs.sum()
    onehot = np.zeros_like(probs)
    onehot[label] = 1
    delta = trace.grads[logits_name][0]
    w.step(
        "Backward, softmax + cross-entropy: ∂L/∂Z = ŷ − y",
        "["
        + ", ".join(f"{num(p)} − {num(t)}" for p, t in zip(probs, onehot, strict=True))
        + f"] = {array_text(delta)}",
    )
    for index in reversed(range(len(layers))):
        name, layer = layers[index]
        gy = trace.grads[name][0]
        below = trace.grads[names[index - 1]][0] if index > 0 else None
        a_in = trace.outputs[names[index - 1]][0] if index > 0 else x
        if isinstance(layer, Linear):
            gw = trace.param_grads[f"{name}.weight"]
            lines = [f"∂L/∂W_dense = δᵀ · A_flat = {array_text(gw)}"]
            if layer.bias is not None:
                lines.append(f"∂L/∂b_dense = δ = {array_text(trace.param_grads[f'{name}.bias'])}")
            if below is not None:
                lines.append(f"∂L/∂A_flat = δ · W_dense = {array_text(below)}")
            w.step(f"Backward, dense layer {name}", *lines)
        elif isinstance(layer, Flatten):
            if below is not None:
                w.step(
                    f"Backward, flatten layer {name}: reshape the gradient back to {_shape(below)}",
                    f"∂L/∂A = {array_text(below if below.shape[0] > 1 else below[0])}",
                )
        elif isinstance(layer, MaxPool2D | AvgPool2D):
            rule = (
                "each window's gradient goes to its maximum only, 0 elsewhere"
                if isinstance(layer, MaxPool2D)
                else "each window's gradient is shared equally by its positions"
            )
            if below is not None:
                # Name the pooled input as its forward step did (A_relu after a ReLU).
                pooled = "A_relu" if isinstance(layers[index - 1][1], ReLU) else "A"
                w.step(
                    f"Backward, pooling layer {name}: {rule}",
                    f"∂L/∂{pooled} = {array_text(below if below.shape[0] > 1 else below[0])}",
                )
        elif isinstance(layer, ReLU | Sigmoid | Tanh):
            if below is None:
                continue
            if isinstance(layer, ReLU):
                rule = "∂L/∂Z = 1(Z > 0) ⊙ ∂L/∂A: the gradient passes where Z > 0, else 0"
                blocked = int(((a_in <= 0) & (gy != 0)).sum())
                note = (
                    "every Z was above 0, so the gradient passes unchanged"
                    if not (a_in <= 0).any()
                    else f"{int((a_in <= 0).sum())} of {a_in.size} positions block it "
                    f"({blocked} of them had a non-zero gradient)"
                )
            elif isinstance(layer, Sigmoid):
                rule, note = "∂L/∂Z = ∂L/∂A ⊙ A(1 − A)", ""
            else:
                rule, note = "∂L/∂Z = ∂L/∂A ⊙ (1 − A²)", ""
            shown = below if below.ndim != 3 or below.shape[0] > 1 else below[0]
            w.step(
                f"Backward, {type(layer).__name__} layer {name}", rule, note,
                f"∂L/∂Z = {array_text(shown)}",
            )  # fmt: skip
        elif isinstance(layer, Conv2D):
            _conv_backward(w, name, layer, a_in, gy, trace, below)
        elif below is not None:
            w.step(f"Backward, layer {name} {layer!r}", f"∂L/∂input = {array_text(below)}")


def _conv_backward(
    w: _Writer,
    name: str,
    layer: Conv2D,
    x: np.ndarray,
    gz: np.ndarray,
    trace: Trace,
    below: np.ndarray | None,
) -> None:
    assert trace.param_grads is not None
    gw = trace.param_grads[f"{name}.weight"]
    xp = _padded(x, layer)
    lines = ["∂L/∂W_conv = Σ over positions ∂L/∂Z[i, j] · X_region(i, j)"]
    nonzero = list(zip(*np.nonzero(gz), strict=True))
    if len(nonzero) <= 4 and gw[0].size <= FULL_VALUES:
        if not nonzero:
            lines.append("every ∂L/∂Z is 0, so every ∂L/∂W is 0")
        for o, i, j in nonzero:
            patch = _patch(xp, layer, int(i), int(j))
            shown = patch if patch.shape[0] > 1 else patch[0]
            lines.append(
                f"∂L/∂Z[{o}, {i}, {j}] = {num(gz[o, i, j])} is the only non-zero term for "
                f"filter {o}: {num(gz[o, i, j])} × {array_text(shown)}"
                if sum(1 for t in nonzero if t[0] == o) == 1
                else f"+ {num(gz[o, i, j])} × {array_text(shown)}"
            )
    else:
        lines.append(f"({len(nonzero)} non-zero ∂L/∂Z terms)")
    for o in range(gw.shape[0]):
        shown = gw[o] if gw.shape[1] > 1 else gw[o, 0]
        lines.append(f"∂L/∂W[{o}] = {array_text(shown)}")
    if layer.bias is not None:
        gb = trace.param_grads[f"{name}.bias"]
        lines.append(f"∂L/∂b_conv = Σ ∂L/∂Z = {array_text(gb)}")
    if below is not None:
        shown = below if below.shape[0] > 1 else below[0]
        lines.append(f"∂L/∂X = W_conv * ∂L/∂Z (full convolution) = {array_text(shown)}")
    w.step(f"Backward, convolution layer {name} {layer!r}", *lines)


def _sgd_steps(w: _Writer, model: Sequential, trace: Trace, lr: float) -> dict[str, np.ndarray]:
    """Apply one plain SGD step with cnnx.optim.SGD to a copy of the weights and show it."""
    from cnnx.optim import SGD

    assert trace.param_grads is not None
    params = dict(model.named_parameters())
    saved = {k: p.data.copy() for k, p in params.items()}
    saved_grads = {k: p.grad for k, p in params.items()}
    try:
        for k, p in params.items():
            p.grad = p.data.copy()
            p.grad[...] = trace.param_grads[k].astype(to_host(p.data).dtype)
        SGD(model.named_parameters(), lr=lr).step()
        updated = {k: to_host(p.data).copy() for k, p in params.items()}
    finally:
        for k, p in params.items():
            p.data[...] = saved[k]
            p.grad = saved_grads[k]
    lines = []
    for k in params:
        old = to_host(saved[k])
        grad = _squeeze(trace.param_grads[k])
        lines.append(f"{k}: {array_text(_squeeze(old))} − {num(lr)} × {array_text(grad)}")
        lines.append(f"   = {array_text(_squeeze(updated[k]), digits=8)}")
    w.step(f"SGD update, θ_new = θ − η · ∂L/∂θ with η = {num(lr)}", *lines)
    return updated


def _squeeze(a: np.ndarray) -> np.ndarray:
    """A single 2-D kernel ``(1, 1, KH, KW)`` shown as the matrix the slides show."""
    return a[0, 0] if a.ndim == 4 and a.shape[:2] == (1, 1) else a


# The lecture slides' worked example (research text 001, section 5).
WORKED_INPUT = np.array([[1, 2, 0, 1], [3, 1, 1, 5], [0, 2, 2, 0], [1, 0, 3, 1]], dtype=np.float64)
WORKED_FILTER = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=np.float64)
WORKED_LR = 0.1


def worked_example_model() -> Sequential:
    """The slides' network in float64: Conv 3×3 (bias 1), ReLU, MaxPool 2, Flatten, Dense 1→2."""
    from cnnx import nn

    model = nn.Sequential(
        nn.Conv2D(1, 1, 3), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(), nn.Linear(1, 2)
    ).to(dtype=np.float64)
    model[0].weight.data[...] = WORKED_FILTER.reshape(1, 1, 3, 3)
    model[0].bias.data[...] = 1.0
    model[4].weight.data[...] = np.array([[0.5], [-0.5]])
    model[4].bias.data[...] = np.array([0.1, 0.2])
    return model


def worked_example() -> Explanation:
    """The slides' example replayed: label 0, one SGD step at lr 0.1."""
    model = worked_example_model()
    return explain_sample(model, WORKED_INPUT.reshape(1, 4, 4), label=0, lr=WORKED_LR)
