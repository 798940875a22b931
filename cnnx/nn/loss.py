"""Softmax cross-entropy loss."""

from __future__ import annotations

from typing import Any

from cnnx.backends import get_array_module
from cnnx.nn import functional as F


class SoftmaxCrossEntropy:
    """Mean softmax cross-entropy over a batch, and its gradient.

    Args:
        check_targets: validate integer labels against the number of classes on
            every call. Validation needs the labels' min and max, which makes a GPU
            wait for them; ``cnnx.fit`` checks labels once up front and turns this off.

    ``forward(logits, target)``:
        logits ``(N, C)`` float; target either integer labels ``(N,)`` in [0, C)
        or a one-hot / probability matrix ``(N, C)``. Returns the mean loss as a
        0-d array on the logits' device (``float(loss)`` gives a Python float).
        Computed with log-sum-exp, so it is finite for logits as large as ±1e4.

    ``backward(gy=1.0)``:
        Returns ``gy · (softmax(logits) − onehot(target)) / N``, shape ``(N, C)``.
    """

    def __init__(self, check_targets: bool = True):
        self.check_targets = check_targets
        self._probs: Any = None
        self._target: Any = None

    def __repr__(self) -> str:
        return "SoftmaxCrossEntropy()"

    def __call__(self, logits: Any, target: Any) -> Any:
        return self.forward(logits, target)

    def forward(self, logits: Any, target: Any) -> Any:
        xp = get_array_module(logits, target)
        if getattr(logits, "ndim", 0) != 2:
            raise ValueError(
                f"SoftmaxCrossEntropy: logits must have shape (N, C), got "
                f"{getattr(logits, 'shape', type(logits).__name__)}"
            )
        n, c = logits.shape
        labels = self._check_target(xp, target, n, c)
        if labels is None:
            target = target.astype(logits.dtype, copy=False)
        log_probs = F.log_softmax(logits)
        if labels is not None:
            loss = -log_probs[xp.arange(n), labels].sum() / n
        else:
            loss = -(target * log_probs).sum() / n
        self._probs = xp.exp(log_probs)
        self._target = target
        return xp.asarray(loss, dtype=logits.dtype)

    def _check_target(self, xp: Any, target: Any, n: int, c: int) -> Any:
        shape = tuple(getattr(target, "shape", ()))
        if shape == (n,) and target.dtype.kind in "iu":
            if self.check_targets and n:
                low, high = int(target.min()), int(target.max())
                if low < 0 or high >= c:
                    bad = low if low < 0 else high
                    raise ValueError(
                        f"SoftmaxCrossEntropy: label {bad} is outside [0, {c - 1}] "
                        f"for logits with {c} classes"
                    )
            return target
        if shape == (n, c) and target.dtype.kind == "f":
            return None  # forward() casts it to the logits' dtype
        raise ValueError(
            f"SoftmaxCrossEntropy: target must be integer labels of shape ({n},) or a "
            f"float one-hot/probability matrix of shape ({n}, {c}); got shape {shape} "
            f"dtype {getattr(target, 'dtype', type(target).__name__)}"
        )

    def backward(self, gy: Any = 1.0) -> Any:
        """Gradient of the mean loss with respect to the logits, ``(N, C)``."""
        if self._probs is None:
            raise RuntimeError("SoftmaxCrossEntropy: backward() called before forward()")
        xp = get_array_module(self._probs)
        probs, target = self._probs, self._target
        n = probs.shape[0]
        if target.ndim == 1:
            grad = probs.copy()
            grad[xp.arange(n), target] -= 1.0
        else:
            grad = probs - target
        grad *= gy / n
        return grad
