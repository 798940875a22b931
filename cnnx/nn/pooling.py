"""Max and average pooling as loops of strided slices over batch-last memory.

Slices of ``(C, H, W, N)`` memory copy runs of ``N`` contiguous values, and
the loops handle every kernel, stride and input size the same way,
overlapping windows included, deterministically on both devices. Max pooling
calls the primitives ``maxpool_forward``/``maxpool_backward`` of
:mod:`cnnx.backends.primitives`, which hold its CPU execution strategy.
"""

from __future__ import annotations

from typing import Any

from cnnx.backends import get_array_module
from cnnx.backends import primitives as P
from cnnx.nn import functional as F
from cnnx.nn.module import Module


class _Pool2D(Module):
    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None):
        super().__init__()
        self.kernel_size = F.pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else F.pair(stride, "stride")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(
                f"{type(self).__name__} needs kernel_size >= 1 and stride >= 1, got "
                f"kernel_size={kernel_size}, stride={stride}"
            )
        self._x_shape: tuple[int, ...] | None = None
        self._geometries: dict[tuple[int, ...], tuple[int, int]] = {}

    def extra_repr(self) -> str:
        k, s = self.kernel_size, self.stride
        ks = k[0] if k[0] == k[1] else k
        ss = s[0] if s[0] == s[1] else s
        return f"kernel_size={ks}" + ("" if s == k else f", stride={ss}")

    def _reset_cache(self) -> None:
        self._x_shape = None

    @property
    def _non_overlapping(self) -> bool:
        return self.stride == self.kernel_size

    def _geometry(self, x: Any) -> tuple[int, int]:
        """``(OH, OW)`` for input ``x``; checked once per input shape, then remembered."""
        known = self._geometries.get(x.shape)
        if known is not None:
            return known
        self._check_input(x, "NCHW")
        kh, kw = self.kernel_size
        sh, sw = self.stride
        h, w = x.shape[2:]
        if h < kh or w < kw:
            raise ValueError(
                f"{self!r}: input of shape {tuple(x.shape)} is smaller than the window {kh}×{kw}"
            )
        geometry = F.conv_output_size(h, kh, sh, 0), F.conv_output_size(w, kw, sw, 0)
        if len(self._geometries) > 16:
            self._geometries.clear()
        self._geometries[tuple(x.shape)] = geometry
        return geometry

    def _windows(self, oh: int, ow: int) -> list[tuple[slice, slice]]:
        """``(rows, cols)`` of each window offset, in row-major order."""
        offsets = F.window_offsets((oh, ow), self.kernel_size, self.stride)
        return [(rows, cols) for _, _, rows, cols in offsets]

    def _require_forward(self) -> tuple[int, int, int, int]:
        if self._x_shape is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return self._x_shape


class MaxPool2D(_Pool2D):
    """Max pooling over ``(N, C, H, W)``; output ``(N, C, OH, OW)``, ``OH = (H − KH)//SH + 1``.

    Args:
        kernel_size: ``K`` or ``(KH, KW)``.
        stride: defaults to ``kernel_size`` (non-overlapping windows).

    Forward: ``y = max over each window``. Backward: each window's gradient goes to
    exactly one input position, the first maximum in row-major order within the
    window; overlapping windows add up.
    """

    def __init__(
        self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
    ):
        super().__init__(kernel_size, stride)
        self._saved: Any = None

    def _reset_cache(self) -> None:
        super()._reset_cache()
        self._saved = None

    def forward(self, x: Any) -> Any:
        self._geometry(x)
        y, self._saved = P.maxpool_forward(x, self.kernel_size, self.stride)
        self._x_shape = tuple(x.shape)
        return y.transpose(3, 0, 1, 2)

    def backward(self, gy: Any) -> Any:
        x_shape = self._require_forward()
        return P.maxpool_backward(gy, self._saved, x_shape, self.kernel_size, self.stride)


class AvgPool2D(_Pool2D):
    """Average pooling over ``(N, C, H, W)``; same geometry as :class:`MaxPool2D`."""

    def __init__(
        self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
    ):
        super().__init__(kernel_size, stride)

    def forward(self, x: Any) -> Any:
        oh, ow = self._geometry(x)
        src = F.batch_last(x)
        windows = self._windows(oh, ow)
        rows, cols = windows[0]
        y = src[:, rows, cols].copy()
        for rows, cols in windows[1:]:
            y += src[:, rows, cols]
        y *= 1.0 / (self.kernel_size[0] * self.kernel_size[1])
        self._x_shape = tuple(x.shape)
        return y.transpose(3, 0, 1, 2)

    def backward(self, gy: Any) -> Any:
        n, c, h, w = self._require_forward()
        xp = get_array_module(gy)
        gx = xp.zeros((c, h, w, n), dtype=gy.dtype)
        gyt = gy.transpose(1, 2, 3, 0) * (1.0 / (self.kernel_size[0] * self.kernel_size[1]))
        _, oh, ow, _ = gyt.shape
        for rows, cols in self._windows(oh, ow):
            gx[:, rows, cols] += gyt
        return gx.transpose(3, 0, 1, 2)
