"""Elementwise activations. Each keeps its output (or input) for the backward pass."""

from __future__ import annotations

from typing import Any

from cnnx.backends import get_array_module
from cnnx.backends import primitives as P
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

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""

    def forward(self, x: Any) -> Any:
        y = P.relu_forward(x, inplace=self.inplace)
        self._saved = y
        return y

    def backward(self, gy: Any) -> Any:
        y = self._require_saved()
        return P.relu_backward(gy, y, inplace=self.inplace)


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
