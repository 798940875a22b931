"""The six update rules, each written once in place with ``xp`` operations.

With ``g = grad + weight_decay·p``:

- SGD:       p -= lr·g
- Momentum:  v = μ·v + g;                 p -= lr·v
- Nesterov:  v = μ·v + g;                 p -= lr·(g + μ·v)
- Adagrad:   r += g²;                     p -= lr·g / (sqrt(r) + eps)
- RMSprop:   r = ρ·r + (1−ρ)·g²;          p -= lr·g / (sqrt(r) + eps)
- Adam:      m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
             m̂ = m/(1−β1^t);  v̂ = v/(1−β2^t);   p -= lr·m̂ / (sqrt(v̂) + eps)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from cnnx.backends import get_array_module
from cnnx.optim.optimizer import Optimizer, check_positive, check_unit_interval


def _adaptive_step(p: Any, g: Any, mean_sq: Any, lr: float, eps: float) -> None:
    """``p -= lr·g / (sqrt(mean_sq) + eps)``, shared by Adagrad and RMSprop."""
    denom = get_array_module(p).sqrt(mean_sq)
    denom += eps
    step = g * lr
    step /= denom
    p -= step


class SGD(Optimizer):
    """Plain stochastic gradient descent: ``p -= lr·g``."""

    def __init__(self, params: Iterable[Any], lr: float = 0.01, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)

    def update(self, p: Any, g: Any, state: dict[str, Any]) -> None:
        p -= self.hyper["lr"] * g


class Momentum(Optimizer):
    """Heavy-ball momentum: ``v = μ·v + g; p -= lr·v``."""

    state_keys = ("velocity",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            params, lr, weight_decay, momentum=check_unit_interval("momentum", momentum)
        )

    def update(self, p: Any, g: Any, state: dict[str, Any]) -> None:
        v = self._buffer(state, "velocity", p)
        v *= self.hyper["momentum"]
        v += g
        p -= self.hyper["lr"] * v


class Nesterov(Momentum):
    """Nesterov momentum: ``v = μ·v + g; p -= lr·(g + μ·v)`` (same arguments as Momentum)."""

    def update(self, p: Any, g: Any, state: dict[str, Any]) -> None:
        mu = self.hyper["momentum"]
        v = self._buffer(state, "velocity", p)
        v *= mu
        v += g
        step = v * mu
        step += g
        step *= self.hyper["lr"]
        p -= step


class Adagrad(Optimizer):
    """Adagrad: ``r += g²; p -= lr·g / (sqrt(r) + eps)``."""

    state_keys = ("sum_sq",)

    def __init__(
        self, params: Iterable[Any], lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0
    ):
        super().__init__(params, lr, weight_decay, eps=check_positive("eps", eps))

    def update(self, p: Any, g: Any, state: dict[str, Any]) -> None:
        r = self._buffer(state, "sum_sq", p)
        r += g * g
        _adaptive_step(p, g, r, self.hyper["lr"], self.hyper["eps"])


class RMSprop(Optimizer):
    """RMSprop: ``r = ρ·r + (1−ρ)·g²; p -= lr·g / (sqrt(r) + eps)``."""

    state_keys = ("mean_sq",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        rho: float = 0.9,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            params,
            lr,
            weight_decay,
            rho=check_unit_interval("rho", rho),
            eps=check_positive("eps", eps),
        )

    def update(self, p: Any, g: Any, state: dict[str, Any]) -> None:
        rho = self.hyper["rho"]
        r = self._buffer(state, "mean_sq", p)
        r *= rho
        r += (1.0 - rho) * (g * g)
        _adaptive_step(p, g, r, self.hyper["lr"], self.hyper["eps"])


class Adam(Optimizer):
    """Adam with bias correction; ``t`` counts calls to :meth:`step`."""

    state_keys = ("m", "v")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            params,
            lr,
            weight_decay,
            beta1=check_unit_interval("beta1", beta1),
            beta2=check_unit_interval("beta2", beta2),
            eps=check_positive("eps", eps),
        )

    def update(self, p: Any, g: Any, state: dict[str, Any]) -> None:
        xp = get_array_module(p)
        h = self.hyper
        b1, b2, t = h["beta1"], h["beta2"], self.step_count
        m = self._buffer(state, "m", p)
        v = self._buffer(state, "v", p)
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        # lr·m̂/(sqrt(v̂)+eps) with the bias corrections folded into two scalars:
        # m̂ = m/(1−β1^t) and sqrt(v̂) = sqrt(v)/sqrt(1−β2^t).
        denom = xp.sqrt(v)
        denom *= 1.0 / math.sqrt(1.0 - b2**t)
        denom += h["eps"]
        step = m * (h["lr"] / (1.0 - b1**t))
        step /= denom
        p -= step
