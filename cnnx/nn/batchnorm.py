"""Batch normalisation over features (1-D) or channels (2-D)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnx.backends import get_array_module
from cnnx.nn.module import Module, Parameter


class _BatchNorm(Module):
    _layout = ""
    _axes: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if num_features < 1:
            raise ValueError(
                f"{type(self).__name__} num_features must be positive, got {num_features}"
            )
        if not eps > 0:
            raise ValueError(f"{type(self).__name__} eps must be > 0, got {eps!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__} momentum must be in [0, 1], got {momentum!r}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.weight = Parameter(np.ones(num_features, dtype=np.float32))
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
        self._cache: Any = None

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    def _reset_cache(self) -> None:
        self._cache = None

    def _per_feature(self, a: Any) -> Any:
        # (F,) -> broadcastable against the input: (1, F) or (1, F, 1, 1).
        return a.reshape((1, -1) + (1,) * (len(self._layout) - 2))

    def forward(self, x: Any) -> Any:
        self._check_input(x, self._layout, C=self.num_features)
        xp = get_array_module(x)
        if self.training:
            count = x.size // self.num_features
            if count < 2:
                raise ValueError(
                    f"{self!r}: training needs more than one value per feature, got input "
                    f"of shape {tuple(x.shape)}"
                )
            mean = x.mean(axis=self._axes)
            var = x.var(axis=self._axes)
            m = self.momentum
            self.running_mean *= 1.0 - m
            self.running_mean += m * mean.astype(self.running_mean.dtype)
            # Running variance uses the unbiased estimate, as PyTorch does.
            self.running_var *= 1.0 - m
            self.running_var += (m * count / (count - 1)) * var.astype(self.running_var.dtype)
        else:
            mean = self.running_mean.astype(x.dtype, copy=False)
            var = self.running_var.astype(x.dtype, copy=False)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        x_hat = (x - self._per_feature(mean)) * self._per_feature(inv_std)
        self._cache = (x_hat, inv_std, self.training)
        return x_hat * self._per_feature(self.weight.data) + self._per_feature(self.bias.data)

    def backward(self, gy: Any) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        x_hat, inv_std, used_batch_stats = self._cache
        self.bias.grad += gy.sum(axis=self._axes)
        self.weight.grad += (gy * x_hat).sum(axis=self._axes)
        g_hat = gy * self._per_feature(self.weight.data)
        if not used_batch_stats:
            return g_hat * self._per_feature(inv_std)
        # Batch statistics depend on x: subtract the mean of g_hat and its
        # projection on x_hat (the derivative of the normalisation itself).
        mean_g = g_hat.mean(axis=self._axes)
        mean_gx = (g_hat * x_hat).mean(axis=self._axes)
        return (g_hat - self._per_feature(mean_g) - x_hat * self._per_feature(mean_gx)) * (
            self._per_feature(inv_std)
        )


class BatchNorm1D(_BatchNorm):
    """Batch norm over ``(N, F)`` input, one mean/variance per feature.

    Args:
        num_features: F.
        eps: added to the variance (1e-5).
        momentum: running-statistics update rate (0.1): ``r = (1−m)·r + m·batch``.

    Learns ``weight`` (γ, ones) and ``bias`` (β, zeros); buffers ``running_mean``,
    ``running_var`` are used in eval mode.
    """

    _layout = "NC"
    _axes = (0,)


class BatchNorm2D(_BatchNorm):
    """Batch norm over ``(N, C, H, W)`` input, one mean/variance per channel
    (statistics over N, H and W). Same arguments as :class:`BatchNorm1D`."""

    _layout = "NCHW"
    _axes = (0, 2, 3)
