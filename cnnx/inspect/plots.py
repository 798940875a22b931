"""Pictures of a network: its kernels, one sample's feature maps, curves, mistakes.

matplotlib (the ``plot`` extra) is imported only when a picture is drawn, and used
through its object-oriented API with the Agg canvas, so the caller's pyplot state
is untouched. Files are written atomically as PNG.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnx.backends import to_host
from cnnx.errors import CnnxError
from cnnx.nn import Conv2D
from cnnx.utils.atomic import atomic_write_bytes

PLOT_EXTRA = 'this needs matplotlib: pip install "cnnx[plot]"'


def figure(**kwargs: Any) -> Any:
    """A new matplotlib Figure, or a CnnxError naming the extra to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CnnxError(PLOT_EXTRA) from None
    return Figure(**kwargs)


def save(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Render ``fig`` with Agg and write it to ``path`` as PNG (atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _image(a: np.ndarray) -> np.ndarray:
    """One sample ``(C, H, W)`` as something imshow takes (grey for C = 1)."""
    return a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)


def plot_filters(model: Any, path: str | Path) -> Path:
    """Every Conv2D's kernels as a grid: one block per layer, row = input channel,
    column = filter (output channel).

    All kernels of all layers share one colour scale, centred at 0 (blue negative,
    red positive), with a labelled colour bar.
    """
    convs = [(name, layer) for name, layer in model.layers() if isinstance(layer, Conv2D)]
    if not convs:
        raise CnnxError(f"{getattr(model, 'name', 'the model')} has no convolution layers")
    weights = [(name, layer, to_host(layer.weight.data)) for name, layer in convs]
    vmax = max(float(np.abs(w).max()) for _, _, w in weights) or 1.0
    cols = max(w.shape[0] for _, _, w in weights)
    heights: list[float] = []
    for _, _, w in weights:
        heights += [0.45] + [1.0] * w.shape[1]
    fig = figure(figsize=(0.9 * cols + 2.0, 0.9 * sum(heights) + 0.6))
    grid = fig.add_gridspec(
        len(heights), cols + 1, height_ratios=heights, width_ratios=[1] * cols + [0.3],
        left=0.07, right=0.9, top=1 - 0.5 / (0.9 * sum(heights) + 0.6), bottom=0.02,
        hspace=0.25, wspace=0.15,
    )  # fmt: skip
    image = None
    row = 0
    for name, layer, w in weights:
        title = fig.add_subplot(grid[row, :cols])
        title.axis("off")
        title.text(0, 0.1, f"layer {name} {layer!r}", fontsize=8, transform=title.transAxes)
        row += 1
        for c in range(w.shape[1]):
            for o in range(w.shape[0]):
                ax = fig.add_subplot(grid[row, o])
                ax.set_xticks([])
                ax.set_yticks([])
                image = ax.imshow(w[o, c], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
                if o == 0:
                    ax.set_ylabel(f"in {c}", fontsize=7)
                if c == w.shape[1] - 1:
                    ax.set_xlabel(f"f{o}", fontsize=7)
            row += 1
    bar = fig.colorbar(image, cax=fig.add_subplot(grid[1:, cols]))
    bar.set_label("kernel weight (one scale for all layers)")
    fig.suptitle(
        f"{getattr(model, 'name', '')} convolution kernels\n"
        "(a row per input channel, a column per filter)",
        fontsize=9,
    )
    return save(fig, path)


def plot_maps(
    model: Any,
    x: np.ndarray,
    path: str | Path,
    title: str = "",
    class_names: Sequence[str] | None = None,
) -> Path:
    """The input and every layer's output for one sample ``(C, H, W)``.

    Each row is one layer; 3-D outputs are drawn channel by channel on one colour
    scale per row (range in the row label), 1-D outputs as bars.
    """
    outputs = model.activations(np.asarray(x)[None])
    rows = [("input", np.asarray(x))] + [(name, out[0]) for name, out in outputs.items()]
    layer_of = dict(model.layers())
    cols = max((a.shape[0] if a.ndim == 3 else 1) for _, a in rows)
    cols = min(cols, 16)
    height = 1.25 * len(rows) + 0.5
    fig = figure(figsize=(1.2 * cols + 2.2, height))
    # Leave 0.5 inch for the title, not matplotlib's default 12 % of a tall figure.
    grid = fig.add_gridspec(len(rows), cols, top=1 - 0.5 / height)
    for r, (name, a) in enumerate(rows):
        label = name if name == "input" else f"{name}: {type(layer_of[name]).__name__}"
        if a.ndim == 3:
            low, high = float(a.min()), float(a.max())
            for c in range(min(a.shape[0], cols)):
                ax = fig.add_subplot(grid[r, c])
                ax.imshow(a[c], cmap="viridis", vmin=low, vmax=high if high > low else low + 1)
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(f"{label}\n[{low:.3g}, {high:.3g}]", fontsize=7)
        else:
            ax = fig.add_subplot(grid[r, :])
            flat = a.reshape(-1)
            ax.bar(range(flat.size), flat, color="tab:blue")
            if class_names is not None and flat.size == len(class_names) and r == len(rows) - 1:
                ax.set_xticks(range(flat.size), [str(n) for n in class_names])
            ax.set_ylabel(label, fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle(title or "feature maps", fontsize=9)
    return save(fig, path)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (``path`` is the run directory or the file).

    Parsed by the run directory's own reader, so a bad line gets the same one-line error
    (file, line, field) as everywhere else.
    """
    from cnnx.runs import METRICS, RunDirectory

    if path.is_file():
        if path.name != METRICS:
            raise CnnxError(f"{path}: expected a run directory or its {METRICS}")
        path = path.parent
    if not (path / METRICS).is_file():
        raise CnnxError(f"{path / METRICS}: no such file (a cnnx train --output-dir run has one)")
    records = RunDirectory(path).read_metrics()
    if not records:
        raise CnnxError(f"{path / METRICS}: no epochs recorded yet")
    return records


def plot_curves(run: str | Path, path: str | Path) -> Path:
    """Loss and accuracy per epoch, train and validation, from a run's metrics.jsonl."""
    records = read_metrics(Path(run))
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in records]
    fig = figure(figsize=(9, 3.4))
    for i, (key, label) in enumerate((("loss", "loss"), ("accuracy", "accuracy"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.plot(epochs, [r.get(key) for r in records], label="train")
        val = [r.get(f"val_{key}") for r in records]
        if any(v is not None for v in val):
            ax.plot(epochs, [math.nan if v is None else v for v in val], label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 1.2"
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(str(run), fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def plot_errors(
    X: np.ndarray,
    y: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    limit: int = 48,
) -> tuple[Path, int]:
    """The misclassified samples (most confident first), each titled true → predicted (p).

    Returns:
        The path and the number of misclassified samples (all of them counted, at most
        ``limit`` drawn).
    """
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:limit]
    cols = max(1, min(8, len(order)))
    rows = max(1, math.ceil(len(order) / cols))
    fig = figure(figsize=(1.5 * cols + 0.4, 1.7 * rows + 0.6))
    if len(order) == 0:
        ax = fig.add_subplot(1, 1, 1)
        ax.axis("off")
        ax.text(0.5, 0.5, f"no misclassified samples among {len(y)}", ha="center")
    for k, i in enumerate(order):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(_image(X[i]), cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        p = predicted[i]
        ax.set_title(
            f"#{i}: {class_names[y[i]]} → {class_names[p]}\n({probs[i, p]:.2f})", fontsize=7
        )
    fig.suptitle(f"{len(wrong)} of {len(y)} misclassified (true → predicted (confidence))",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    return save(fig, path), len(wrong)


def plot_confusion(
    matrix: np.ndarray, class_names: Sequence[str], path: str | Path, title: str | None = None
) -> Path:
    """The confusion matrix with counts (rows: true class, columns: predicted).

    ``title`` (what model, on which data) is drawn above it.
    """
    n = len(class_names)
    fig = figure(figsize=(max(3.2, 1.4 + 0.55 * n), 1.0 + 0.55 * n + (0.4 if title else 0)))
    ax = fig.add_subplot(1, 1, 1)
    if title:
        ax.set_title(title, fontsize=8, wrap=True)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = matrix.max() if matrix.size else 0
    for i in range(n):
        for j in range(n):
            color = "white" if matrix[i, j] > peak / 2 else "black"
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=color, fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def plot_inputs(X: np.ndarray, titles: Sequence[str], path: str | Path) -> Path:
    """Samples as the network sees them (one ``(C, H, W)`` each), with a title each."""
    cols = max(1, min(6, len(X)))
    rows = max(1, math.ceil(len(X) / cols))
    fig = figure(figsize=(1.9 * cols + 0.4, 2.0 * rows + 0.5))
    for k, (sample, title) in enumerate(zip(X, titles, strict=True)):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(_image(sample), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=7)
    fig.suptitle("what the network saw", fontsize=9)
    fig.tight_layout()
    return save(fig, path)
