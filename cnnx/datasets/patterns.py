"""A three-class toy set of small binary patterns (cross, ring, diagonal stripes).

Each sample is one of three base patterns, shifted by a few pixels (the pixels that
move in from outside are 0) and with a share of its pixels flipped. The set is made
for one-convolution-layer experiments: learnable to 100 % by a small CNN, yet not
trivial for it.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

PATTERN_CLASSES = ("cross", "ring", "stripes")
"""Display names of the classes; label ``k`` of :func:`make_patterns` is ``PATTERN_CLASSES[k]``."""


def base_patterns(size: int = 11) -> np.ndarray:
    """The three noiseless patterns.

    Args:
        size: side length in pixels, at least 5.

    Returns:
        ``(3, size, size) float32`` of 0s and 1s: a plus-shaped cross through the
        centre, a ring around the centre, and diagonal stripes (two pixels on, two
        off, running from top-left to bottom-right).
    """
    _check_int("size", size, minimum=5)
    centre = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size]
    # Thicker strokes for larger patterns, so a few flipped pixels cannot erase them.
    half = max(0, size // 10 - 1) + (0.5 if size % 2 == 0 else 0.0)
    cross = (np.abs(rows - centre) <= half) | (np.abs(cols - centre) <= half)
    radius = centre - max(1.0, size / 8)
    distance = np.hypot(rows - centre, cols - centre)
    ring = np.abs(distance - radius) <= max(0.75, size / 14)
    stripes = (rows - cols) % 4 < 2
    return np.stack([cross, ring, stripes]).astype(np.float32)


def make_patterns(
    n_per_class: int = 40,
    size: int = 11,
    noise: float = 0.1,
    seed: int = 0,
    *,
    max_shift: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy, shifted copies of the three base patterns.

    Each copy is the base pattern moved by ``(dy, dx)``, each drawn uniformly from
    ``-max_shift … max_shift`` (pixels moved in from outside are 0), then every pixel
    is flipped (0 ↔ 1) with probability ``noise``. Samples are interleaved by class
    (labels 0, 1, 2, 0, 1, 2, …), so any prefix of ``3k`` samples is balanced.

    Args:
        n_per_class: samples of each class, at least 1.
        size: side length in pixels, at least 5.
        noise: probability of flipping each pixel, in [0, 0.5].
        seed: non-negative integer; one ``numpy.random.Generator`` made from it draws
            everything, so the same arguments give the same arrays.
        max_shift: largest shift in pixels, from 0 to ``size // 4``.

    Returns:
        ``(X, y)``: ``X`` is ``(3 * n_per_class, 1, size, size) float32`` of 0s and 1s;
        ``y`` is ``(3 * n_per_class,) int64`` in {0, 1, 2} (see
        :data:`PATTERN_CLASSES`).

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range.
    """
    _check_int("n_per_class", n_per_class, minimum=1)
    _check_int("size", size, minimum=5)
    _check_int("seed", seed, minimum=0)
    _check_int("max_shift", max_shift, minimum=0)
    if max_shift > size // 4:
        raise ValueError(f"max_shift must be at most size // 4 = {size // 4}, got {max_shift}")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a number, got {type(noise).__name__}")
    if not (math.isfinite(noise) and 0 <= noise <= 0.5):
        raise ValueError(f"noise must be in [0, 0.5], got {noise!r}")

    rng = np.random.default_rng(int(seed))
    bases = base_patterns(size)
    n_classes = len(PATTERN_CLASSES)
    n = n_classes * n_per_class
    y = np.tile(np.arange(n_classes, dtype=np.int64), n_per_class)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(n, 2))
    flips = rng.random((n, size, size)) < noise
    X = np.zeros((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        X[i, 0] = _shift_zero_fill(bases[y[i]], int(shifts[i, 0]), int(shifts[i, 1]))
    images = X[:, 0]  # a view: flipping its pixels flips those of X
    images[flips] = 1.0 - images[flips]
    return X, y


def _shift_zero_fill(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved down by ``dy`` and right by ``dx``; uncovered pixels are 0."""
    h, w = image.shape
    out = np.zeros_like(image)
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
