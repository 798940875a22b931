"""Max and average pooling as loops of strided slices over batch-last memory.

Slices of ``(C, H, W, N)`` memory copy runs of ``N`` contiguous values, and
the loops handle every kernel, stride and input size the same way,
overlapping windows included, deterministically on both devices.

Max pooling with non-overlapping windows (stride = kernel, the usual case) is
done separably: first the maximum across each window row, then across rows.
Taking the first maximum at each stage gives the first maximum of the window
in row-major order, and needs KH + KW − 2 comparisons instead of KH·KW − 1.
"""

from __future__ import annotations

from typing import Any

from cnnx.backends import get_array_module
from cnnx.nn import functional as F
from cnnx.nn.module import Module


def first_max(candidates: list[Any]) -> tuple[Any, Any]:
    """Elementwise maximum of same-shaped arrays, and the index of the first one attaining it.

    Returns:
        ``(best, arg)``: ``best`` a new array; ``arg`` uint8 indices into ``candidates``
        (ties keep the lower index, since only a strictly greater value replaces).
    """
    xp = get_array_module(candidates[0])
    best = candidates[0]
    arg = None
    for k, candidate in enumerate(candidates[1:], start=1):
        better = candidate > best
        best = xp.maximum(best, candidate, out=None if k == 1 else best)
        if arg is None:
            arg = better.view(xp.uint8)  # True/False as 1/0, which is k for k = 1
        else:
            # arg = where(better, k, arg) as uint8 arithmetic (wraps mod 256 exactly);
            # NumPy's where with a scalar is several times slower than this.
            arg += better * (k - arg)
    if arg is None:
        best = best.copy()
        arg = xp.zeros(best.shape, dtype=xp.uint8)
    return best, arg


def route(g: Any, arg: Any, outputs: list[Any]) -> None:
    """Send each element of ``g`` to ``outputs[arg]`` and zero to the others (one-hot routing).

    ``outputs`` are views to write into, each shaped like ``g``. The last one is
    filled with ``g`` minus the others, which is exact because the routing is one-hot.
    """
    xp = get_array_module(g)
    others = None
    for i, out in enumerate(outputs[:-1]):
        xp.multiply(g, (arg == i).astype(g.dtype), out=out)
        others = out if others is None else others + out
    if others is None:
        outputs[-1][...] = g
    else:
        xp.subtract(g, others, out=outputs[-1])


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

    @property
    def _non_overlapping(self) -> bool:
        return self.stride == self.kernel_size

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

    def _windows(self, oh: int, ow: int) -> list[tuple[slice, slice]]:
        """``(rows, cols)`` of each window offset, in row-major order."""
        kh, kw = self.kernel_size
        sh, sw = self.stride
        return [(F._window(i, oh, sh), F._window(j, ow, sw)) for i in range(kh) for j in range(kw)]

    def _require_forward(self) -> tuple[int, int, int, int]:
        if self._x_shape is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return self._x_shape


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
        self._args: tuple[Any, ...] = ()

    def _reset_cache(self) -> None:
        super()._reset_cache()
        self._args = ()

    def forward(self, x: Any) -> Any:
        oh, ow = self._geometry(x)
        kh, kw = self.kernel_size
        src = F.batch_last(x)  # (C, H, W, N)
        if self._non_overlapping:
            src = src[:, : oh * kh, : ow * kw]
            row_max, col_arg = first_max([src[:, :, j::kw] for j in range(kw)])
            y, row_arg = first_max([row_max[:, i::kh] for i in range(kh)])
            self._args = (col_arg, row_arg)
        else:
            y, arg = first_max([src[:, rows, cols] for rows, cols in self._windows(oh, ow)])
            self._args = (arg,)
        self._x_shape = tuple(x.shape)
        return y.transpose(3, 0, 1, 2)

    def backward(self, gy: Any) -> Any:
        n, c, h, w = self._require_forward()
        xp = get_array_module(gy)
        gyt = gy.transpose(1, 2, 3, 0)  # (C, OH, OW, N)
        _, oh, ow, _ = gyt.shape
        kh, kw = self.kernel_size
        if self._non_overlapping:
            col_arg, row_arg = self._args
            cropped = h != oh * kh or w != ow * kw
            gx = (xp.zeros if cropped else xp.empty)((c, h, w, n), dtype=gy.dtype)
            g_rows = xp.empty((c, oh * kh, ow, n), dtype=gy.dtype)
            route(gyt, row_arg, [g_rows[:, i::kh] for i in range(kh)])
            inner = gx[:, : oh * kh, : ow * kw]
            route(g_rows, col_arg, [inner[:, :, j::kw] for j in range(kw)])
        else:
            (arg,) = self._args
            gx = xp.zeros((c, h, w, n), dtype=gy.dtype)
            for k, (rows, cols) in enumerate(self._windows(oh, ow)):
                gx[:, rows, cols] += gyt * (arg == k).astype(gy.dtype)
        return gx.transpose(3, 0, 1, 2)


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
