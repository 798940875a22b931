"""Weight initialisers, drawn on the host from a seeded ``numpy.random.Generator``.

Weights are made on the host and moved afterwards, so the same seed gives the
same starting weights on the CPU and on the GPU (CuPy's generators produce a
different stream). No global random state is touched.
"""

from __future__ import annotations

import math

import numpy as np

InitSpec = str | float

RngLike = int | np.random.Generator | None


def make_rng(rng: RngLike) -> np.random.Generator:
    """Return ``rng`` if it is a Generator, else a new Generator seeded with it.

    ``None`` gives a Generator seeded from the operating system (not reproducible);
    pass an int for reproducible weights.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, int | np.integer) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be an int seed, a numpy.random.Generator or None, got {rng!r}")


def init_std(init: InitSpec, fan_in: int) -> float:
    """Standard deviation of the normal distribution an initialiser draws from.

    Args:
        init: ``"xavier"`` (std = 1/sqrt(fan_in), as report 000 defines it),
            ``"he"`` (std = sqrt(2/fan_in)), or a positive float used as the std.
        fan_in: inputs feeding one output unit (in_channels·KH·KW or in_features).
    """
    if isinstance(init, str):
        key = init.lower()
        if key == "xavier":
            return 1.0 / math.sqrt(fan_in)
        if key == "he":
            return math.sqrt(2.0 / fan_in)
        raise ValueError(f"unknown init {init!r}: expected 'xavier', 'he' or a float std")
    if isinstance(init, bool) or not isinstance(init, int | float) or not init > 0:
        raise ValueError(f"init std must be a positive number, got {init!r}")
    return float(init)


def normal(
    shape: tuple[int, ...], std: float, rng: np.random.Generator, dtype: type = np.float32
) -> np.ndarray:
    """Draw a host array of ``shape`` from N(0, std²), cast to ``dtype``."""
    return (rng.standard_normal(shape) * std).astype(dtype)


def init_weight(shape: tuple[int, ...], fan_in: int, init: InitSpec, rng: RngLike) -> np.ndarray:
    """Draw a float32 host weight array for a layer with the given fan-in."""
    return normal(shape, init_std(init, fan_in), make_rng(rng))
