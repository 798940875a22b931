"""Inverted dropout."""

from __future__ import annotations

from typing import Any

from cnnx.backends import device_of
from cnnx.backends import primitives as P
from cnnx.nn.init import RngLike, make_rng
from cnnx.nn.module import Module


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and
    scale the survivors by ``1/(1−p)``; in eval mode, the identity.

    Args:
        p: drop probability in [0, 1).
        rng: int seed or ``numpy.random.Generator`` for the masks. Masks are drawn
            on the host and moved to the input's device, so a CPU run and a GPU
            run with the same seed drop the same elements. Only the mask's bits
            cross to a GPU (``Device.mask``), not a float array per step.

    Forward is ``y = x·mask`` with ``mask = keep/(1−p)``, ``keep`` a 0/1 mask with
    P(keep = 1) = 1 − p; backward is ``gx = gy·mask``.
    """

    def __init__(self, p: float = 0.5, rng: RngLike = None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = make_rng(rng)
        self._mask: Any = None

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def _reset_cache(self) -> None:
        self._mask = None

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        keep = P.uniform_float32(self.rng, x.shape) >= self.p
        # In x's memory layout (batch-last inside a network): products of arrays in two
        # layouts come out in C order, which the layers around would copy back.
        self._mask = P.scaled_mask(device_of(x).mask(keep), 1.0 / (1.0 - self.p), like=x)
        return P.multiply(x, self._mask)

    def backward(self, gy: Any) -> Any:
        if self._mask is None:
            return gy
        return P.multiply(gy, self._mask)
