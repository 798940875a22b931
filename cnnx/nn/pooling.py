"""Max and average pooling as a KH×KW loop of strided slices.

Working slice by slice (instead of reshaping into windows) handles every kernel,
stride and input size the same way, overlapping windows included, keeps the
input's memory layout, and is deterministic on both devices.
"""

from __future__ import annotations

from typing import Any

from cnnx.backends import get_array_module
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

    def extra_repr(self) -> str:
        k, s = self.kernel_size, self.stride
        ks = k[0] if k[0] == k[1] else k
        ss = s[0] if s[0] == s[1] else s
        return f"kernel_size={ks}" + ("" if s == k else f", stride={ss}")

    def _reset_cache(self) -> None:
        self._x_shape = None

    def _geometry(self, x: Any) -> tuple[int, int]:
        self._check_input(x, "NCHW")
        kh, kw = self.kernel_size
        sh, sw = self.stride
        h, w = x.shape[2:]
        if h < kh or w < kw:
            raise ValueError(
                f"{self!r}: input of shape {tuple(x.shape)} is smaller than the window {kh}×{kw}"
            )
        return F.conv_output_size(h, kh, sh, 0), F.conv_output_size(w, kw, sw, 0)

    def _windows(self, oh: int, ow: int):
        """Yield ``(k, rows, cols)``: the k-th window offset, in row-major order."""
        kh, kw = self.kernel_size
        sh, sw = self.stride
        for i in range(kh):
            for j in range(kw):
                yield i * kw + j, F._window(i, oh, sh), F._window(j, ow, sw)


class MaxPool2D(_Pool2D):
    """Max pooling over ``(N, C, H, W)``; output ``(N, C, OH, OW)``, ``OH = (H − KH)//SH + 1``.

    Args:
        kernel_size: ``K`` or ``(KH, KW)``.
        stride: defaults to ``kernel_size`` (non-overlapping windows).

    The backward pass routes each window's gradient to exactly one input
    position: the first maximum in row-major order within the window.
    """

    def __init__(
        self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
    ):
        super().__init__(kernel_size, stride)
        self._argmax: Any = None

    def _reset_cache(self) -> None:
        super()._reset_cache()
        self._argmax = None

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        oh, ow = self._geometry(x)
        src = x.transpose(1, 0, 2, 3)  # (C, N, H, W): keeps channel-major inputs contiguous
        windows = self._windows(oh, ow)
        _, rows, cols = next(windows)
        y = src[:, :, rows, cols].copy()
        argmax = xp.zeros(y.shape, dtype=xp.uint8)
        for k, rows, cols in windows:
            candidate = src[:, :, rows, cols]
            # Strictly greater: ties keep the earlier position, so the first maximum wins.
            xp.copyto(argmax, k, where=candidate > y)
            xp.maximum(y, candidate, out=y)
        self._x_shape = tuple(x.shape)
        self._argmax = argmax
        return y.transpose(1, 0, 2, 3)

    def backward(self, gy: Any) -> Any:
        if self._argmax is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        xp = get_array_module(gy)
        n, c, h, w = self._x_shape
        gx = xp.zeros((c, n, h, w), dtype=gy.dtype)
        gyt = gy.transpose(1, 0, 2, 3)
        _, _, oh, ow = gyt.shape
        overlapping = any(s < k for s, k in zip(self.stride, self.kernel_size, strict=True))
        for k, rows, cols in self._windows(oh, ow):
            routed = gyt * (self._argmax == k)
            if overlapping:
                gx[:, :, rows, cols] += routed
            else:
                gx[:, :, rows, cols] = routed
        return gx.transpose(1, 0, 2, 3)


class AvgPool2D(_Pool2D):
    """Average pooling over ``(N, C, H, W)``; same geometry as :class:`MaxPool2D`."""

    def __init__(
        self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
    ):
        super().__init__(kernel_size, stride)

    def forward(self, x: Any) -> Any:
        oh, ow = self._geometry(x)
        src = x.transpose(1, 0, 2, 3)
        windows = self._windows(oh, ow)
        _, rows, cols = next(windows)
        y = src[:, :, rows, cols].copy()
        for _, rows, cols in windows:
            y += src[:, :, rows, cols]
        y *= 1.0 / (self.kernel_size[0] * self.kernel_size[1])
        self._x_shape = tuple(x.shape)
        return y.transpose(1, 0, 2, 3)

    def backward(self, gy: Any) -> Any:
        if self._x_shape is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        xp = get_array_module(gy)
        n, c, h, w = self._x_shape
        gx = xp.zeros((c, n, h, w), dtype=gy.dtype)
        gyt = gy.transpose(1, 0, 2, 3) * (1.0 / (self.kernel_size[0] * self.kernel_size[1]))
        _, _, oh, ow = gyt.shape
        for _, rows, cols in self._windows(oh, ow):
            gx[:, :, rows, cols] += gyt
        return gx.transpose(1, 0, 2, 3)
