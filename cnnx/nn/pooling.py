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

from cnnx.backends import Scratch, get_array_module
from cnnx.nn import functional as F
from cnnx.nn.module import Module


def first_max(candidates: list[Any], out: Any = None, arg: Any = None) -> tuple[Any, Any]:
    """Elementwise maximum of same-shaped arrays, and the index of the first one attaining it.

    Args:
        candidates: arrays of one shape (strided views are fine).
        out: optional array to hold the maximum; a new one otherwise.
        arg: optional uint8 array to hold the indices; a new one otherwise.

    Returns:
        ``(best, arg)``: the maximum, and uint8 indices into ``candidates`` (ties keep
        the lower index, since only a strictly greater value replaces).
    """
    xp = get_array_module(candidates[0])
    shape = candidates[0].shape
    if arg is None:
        arg = xp.empty(shape, dtype=xp.uint8)
    if len(candidates) == 1:
        arg.fill(0)
        if out is None:
            return candidates[0].copy(), arg
        out[...] = candidates[0]
        return out, arg
    # The first comparison writes 1/0 straight into arg (as booleans), which is k for k = 1.
    xp.greater(candidates[1], candidates[0], out=arg.view(xp.bool_))
    best = xp.maximum(candidates[0], candidates[1], out=out)
    for k, candidate in enumerate(candidates[2:], start=2):
        better = candidate > best
        # arg = where(better, k, arg) as uint8 arithmetic (wraps mod 256 exactly);
        # NumPy's where with a scalar is several times slower than this.
        arg += better * (k - arg)
        xp.maximum(best, candidate, out=best)
    return best, arg


def route(g: Any, arg: Any, outputs: list[Any]) -> None:
    """Send each element of ``g`` to ``outputs[arg]`` and zero to the others (one-hot routing).

    ``outputs`` are views to write into, each shaped like ``g``. The last one is
    filled with ``g`` minus the others, which is exact because the routing is one-hot.
    Multiplying by the uint8/boolean mask directly is faster than converting it to
    floats first.
    """
    xp = get_array_module(g)
    if len(outputs) == 2:  # the common 2-wide window: arg is 0/1, so it is its own mask
        xp.multiply(g, arg, out=outputs[1])
        xp.subtract(g, outputs[1], out=outputs[0])
        return
    others = None
    for i, out in enumerate(outputs[:-1]):
        xp.multiply(g, arg == i, out=out)
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

    The backward pass routes each window's gradient to exactly one input
    position: the first maximum in row-major order within the window.
    """

    def __init__(
        self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
    ):
        super().__init__(kernel_size, stride)
        self._args: tuple[Any, ...] = ()
        self._scratch = Scratch()  # row maxima, argmax indices, row gradients

    def _reset_cache(self) -> None:
        super()._reset_cache()
        self._args = ()
        self._scratch.clear()

    def forward(self, x: Any) -> Any:
        oh, ow = self._geometry(x)
        kh, kw = self.kernel_size
        xp = get_array_module(x)
        scratch = self._scratch
        src = F.batch_last(x)  # (C, H, W, N)
        c, n = src.shape[0], src.shape[3]
        if self._non_overlapping:
            if src.shape[1] != oh * kh or src.shape[2] != ow * kw:
                src = src[:, : oh * kh, : ow * kw]
            rows_shape = (c, oh * kh, ow, n)
            row_max, col_arg = first_max(
                [src[:, :, j::kw] for j in range(kw)],
                out=scratch.empty("row_max", rows_shape, x.dtype, xp),
                arg=scratch.empty("col_arg", rows_shape, xp.uint8, xp),
            )
            y, row_arg = first_max(
                [row_max[:, i::kh] for i in range(kh)],
                arg=scratch.empty("row_arg", (c, oh, ow, n), xp.uint8, xp),
            )
            self._args = (col_arg, row_arg)
        else:
            y, arg = first_max(
                [src[:, rows, cols] for rows, cols in self._windows(oh, ow)],
                arg=scratch.empty("arg", (c, oh, ow, n), xp.uint8, xp),
            )
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
            g_rows = self._scratch.empty("g_rows", (c, oh * kh, ow, n), gy.dtype, xp)
            route(gyt, row_arg, [g_rows[:, i::kh] for i in range(kh)])
            inner = gx[:, : oh * kh, : ow * kw]
            route(g_rows, col_arg, [inner[:, :, j::kw] for j in range(kw)])
        else:
            (arg,) = self._args
            gx = xp.zeros((c, h, w, n), dtype=gy.dtype)
            for k, (rows, cols) in enumerate(self._windows(oh, ow)):
                gx[:, rows, cols] += gyt * (arg == k)
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
