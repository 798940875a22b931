"""Fully connected layer and Flatten."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnx.backends import primitives as P
from cnnx.nn import functional as F
from cnnx.nn.init import InitSpec, RngLike, init_weight
from cnnx.nn.module import Module, Parameter


class Linear(Module):
    """``y = x @ weight.T + bias`` (PyTorch's convention, so weights can be exchanged).

    Args:
        in_features: F of the input ``(N, F)``.
        out_features: number of outputs O.
        init: ``"he"`` (default), ``"xavier"`` or a float std; biases start at zero.
        bias: whether to learn a bias.
        rng: int seed or ``numpy.random.Generator`` for the initial weights.

    Shapes: weight ``(O, F)``, bias ``(O,)``, input ``(N, F)``, output ``(N, O)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        init: InitSpec = "he",
        bias: bool = True,
        rng: RngLike = None,
    ):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Linear sizes must be positive, got in_features={in_features}, "
                f"out_features={out_features}"
            )
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = Parameter(init_weight((out_features, in_features), in_features, init, rng))
        self.bias = Parameter(np.zeros(out_features, dtype=np.float32)) if bias else None
        self._x: Any = None

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}" + ("" if self.bias else ", bias=False")

    def _reset_cache(self) -> None:
        self._x = None

    def forward(self, x: Any) -> Any:
        """``(N, F)`` -> ``(N, O)``."""
        self._check_input(x, "NF", F=self.in_features)
        # (W xᵀ)ᵀ instead of x Wᵀ: the same product, which OpenBLAS runs faster this
        # way round on a flattened batch-last x (docs/performance.md, issue 10).
        y = P.matmul(self.weight.data, x.T).T
        if self.bias is not None:
            y += self.bias.data
        self._x = x
        return y

    def backward_params(self, gy: Any) -> None:
        """Add into weight/bias grads without computing the input gradient."""
        if self._x is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        P.matmul_tn_add(gy, self._x, self.weight.grad)  # gW += gyᵀ·x
        if self.bias is not None:
            self.bias.grad += F.column_sums(gy)

    def backward(self, gy: Any) -> Any:
        """``gy (N, O)`` -> ``gx (N, F)``; adds into weight/bias grads."""
        self.backward_params(gy)
        # (Wᵀ gyᵀ)ᵀ instead of gy W: the same numbers, stored feature-major, which
        # Flatten turns back into the batch-last layout the layers below work in.
        return P.matmul(self.weight.data.T, gy.T).T


class Flatten(Module):
    """``(N, d1, d2, ...)`` -> ``(N, d1·d2·...)`` in C order (PyTorch's order).

    For batch-last activations this is a view, not a copy.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def _reset_cache(self) -> None:
        self._shape = None

    def forward(self, x: Any) -> Any:
        if getattr(x, "ndim", 0) < 2:
            raise ValueError(
                f"Flatten(): expected input with a batch axis, (N, ...), got shape "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
        self._shape = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, gy: Any) -> Any:
        if self._shape is None:
            raise RuntimeError("Flatten(): backward() called before forward()")
        return gy.reshape(self._shape)
