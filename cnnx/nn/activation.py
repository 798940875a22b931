"""Elementwise activations. Each keeps its output (or input) for the backward pass."""

from __future__ import annotations

from typing import Any

from cnnx.backends import get_array_module
from cnnx.nn.module import Module


class _Elementwise(Module):
    def __init__(self) -> None:
        super().__init__()
        self._saved: Any = None

    def _reset_cache(self) -> None:
        self._saved = None

    def _require_saved(self) -> Any:
        if self._saved is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return self._saved


class ReLU(_Elementwise):
    """``max(x, 0)``; gradient 1 where x > 0, else 0.

    Args:
        inplace: write the output over the input, and the input gradient over the
            incoming gradient, instead of allocating new arrays. On large
            activations this saves a pass of memory traffic each way. Use it only
            where nothing else needs the input afterwards, e.g. directly after a
            Conv2D or Linear inside a Sequential (the model zoo does this).
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)
        self._zeros: Any = None

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""

    def _reset_cache(self) -> None:
        super()._reset_cache()
        self._zeros = None

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        zeros = self._zeros
        # NumPy's maximum against a scalar is several times slower than against
        # an array of the same layout, so one zero array is kept and reused.
        if (
            zeros is None
            or zeros.shape != x.shape
            or zeros.strides != x.strides
            or (zeros.dtype != x.dtype or get_array_module(zeros) is not xp)
        ):
            zeros = self._zeros = xp.zeros_like(x)
        y = xp.maximum(x, zeros, out=x if self.inplace else None)
        self._saved = y
        return y

    def backward(self, gy: Any) -> Any:
        y = self._require_saved()
        # Multiplying by the boolean mask directly beats converting it to floats first.
        return get_array_module(gy).multiply(gy, y > 0, out=gy if self.inplace else None)


class LeakyReLU(_Elementwise):
    """``x`` where x > 0, else ``negative_slope · x``."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        if not negative_slope >= 0:
            raise ValueError(f"LeakyReLU negative_slope must be >= 0, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        positive = x > 0
        self._saved = positive
        return xp.where(positive, x, x * self.negative_slope)

    def backward(self, gy: Any) -> Any:
        positive = self._require_saved()
        xp = get_array_module(gy)
        return xp.where(positive, gy, gy * self.negative_slope)


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(−x))``, computed as ``0.5·tanh(x/2) + 0.5``.

    The tanh form never overflows, so it is finite for any |x| (``exp(−x)`` would
    overflow float32 for x < −88). Gradient ``y·(1 − y)``.
    """

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        y = x * 0.5
        xp.tanh(y, out=y)
        y *= 0.5
        y += 0.5
        self._saved = y
        return y

    def backward(self, gy: Any) -> Any:
        y = self._require_saved()
        return gy * (y * (1.0 - y))


class Tanh(_Elementwise):
    """``tanh(x)``; gradient ``1 − y²``."""

    def forward(self, x: Any) -> Any:
        y = get_array_module(x).tanh(x)
        self._saved = y
        return y

    def backward(self, gy: Any) -> Any:
        y = self._require_saved()
        return gy * (1.0 - y * y)
