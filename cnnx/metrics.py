"""Classification metrics on the host: confusion matrix, per-class precision and recall."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnnx.backends import to_host


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C) int64`` counts: row = true class, column = predicted class.

    Labels may be host or device arrays (or lists); device arrays are copied to the host.
    """
    y_true = to_host(y_true).astype(np.int64, copy=False)
    y_pred = to_host(y_pred).astype(np.int64, copy=False)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"confusion_matrix: y_true {y_true.shape} and y_pred {y_pred.shape} must be equal 1-D"
        )
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} has labels outside [0, {num_classes - 1}]")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


@dataclass(frozen=True)
class ClassReport:
    """Per-class precision, recall and support (NaN where a ratio has no denominator)."""

    precision: np.ndarray
    recall: np.ndarray
    support: np.ndarray


def per_class(matrix: np.ndarray) -> ClassReport:
    """Precision of each predicted column and recall of each true row of a confusion matrix."""
    matrix = to_host(matrix).astype(np.float64)
    hits = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, np.nan)
        recall = np.where(actual > 0, hits / actual, np.nan)
    return ClassReport(precision, recall, actual.astype(np.int64))


def format_report(matrix: np.ndarray, class_names: Sequence[str]) -> str:
    """Per-class precision/recall table and the confusion matrix, as text."""
    report = per_class(matrix)
    width = max(5, *(len(n) for n in class_names))
    lines = [f"{'class':<{width}}  precision  recall  support"]
    for k, name in enumerate(class_names):
        p, r = report.precision[k], report.recall[k]
        lines.append(
            f"{name:<{width}}  {'n/a' if np.isnan(p) else f'{p:.4f}':>9}  "
            f"{'n/a' if np.isnan(r) else f'{r:.4f}':>6}  {report.support[k]:>7}"
        )
    cell = max(4, len(str(int(np.max(matrix, initial=0)))) + 1, *(len(n) + 1 for n in class_names))
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    lines.append(" " * (width + 1) + "".join(f"{n:>{cell}}" for n in class_names))
    for k, name in enumerate(class_names):
        lines.append(f"{name:<{width}} " + "".join(f"{int(v):>{cell}}" for v in matrix[k]))
    return "\n".join(lines)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str) -> None:
    """Save the confusion matrix as a PNG (needs matplotlib: ``pip install "cnnx[plot]"``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnx.utils.atomic import atomic_write

    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(class_names), 0.8 + 0.6 * len(class_names)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = matrix.max() if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if matrix[i, j] > peak / 2 else "black"
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=color)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
