"""Stratified train/validation split of a labelled data set."""

from __future__ import annotations

import math
import numbers

import numpy as np


def stratified_split(y, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into training and validation, class by class.

    For each class ``c`` (in ascending order) its ``n_c`` indices are shuffled with one
    ``numpy.random.Generator`` seeded by ``seed``, and the first
    ``round(n_c * val_fraction)`` of them (halves round up) go to validation, the rest
    to training. A class never loses all of its samples to validation: at most
    ``n_c - 1`` of them are taken. With 32 samples per class and ``val_fraction=0.2``
    this gives 6 validation samples per class.

    Args:
        y: ``(N,)`` integer class labels (any integer values).
        val_fraction: share of each class to put in validation, in [0, 1).
        seed: non-negative integer; the same seed and labels give the same split.

    Returns:
        ``(train_idx, val_idx)``: ``int64`` index arrays into ``y``, each sorted
        ascending; together they hold every index exactly once.

    Raises:
        TypeError: ``y`` is not an integer array, or ``seed`` is not an integer.
        ValueError: ``y`` is not 1-D, ``val_fraction`` is outside [0, 1), or ``seed``
            is negative.
    """
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be a 1-D array of class labels, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"y must hold integer class labels, got dtype {labels.dtype}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise TypeError(f"val_fraction must be a number, got {type(val_fraction).__name__}")
    if not (math.isfinite(val_fraction) and 0 <= val_fraction < 1):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")

    rng = np.random.default_rng(int(seed))
    val_parts = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_val = min(math.floor(len(members) * float(val_fraction) + 0.5), len(members) - 1)
        val_parts.append(rng.permutation(members)[:n_val])
    is_val = np.zeros(labels.shape[0], dtype=bool)
    for part in val_parts:
        is_val[part] = True
    return (np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64))
