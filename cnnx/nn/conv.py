"""2-D convolution as im2col + one matrix product."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnx.backends import Scratch, get_array_module
from cnnx.nn import functional as F
from cnnx.nn.init import InitSpec, RngLike, init_weight
from cnnx.nn.module import Module, Parameter


class Conv2D(Module):
    """2-D convolution (cross-correlation, as in PyTorch) over NCHW input.

    Args:
        in_channels: C of the input.
        out_channels: number of filters O.
        kernel_size: ``K`` or ``(KH, KW)``.
        stride: ``S`` or ``(SH, SW)``.
        padding: zeros added on each side, ``P`` or ``(PH, PW)``.
        init: ``"he"`` (default), ``"xavier"`` or a float std for the weights; biases
            start at zero.
        bias: whether to add a learned bias per output channel.
        rng: int seed or ``numpy.random.Generator`` for the initial weights.

    Shapes:
        weight ``(O, C, KH, KW)``, bias ``(O,)``; input ``(N, C, H, W)``; output
        ``(N, O, OH, OW)`` with ``OH = (H + 2·PH − KH) // SH + 1``. The output is a
        channel-major view (see :mod:`cnnx.nn.functional`).

    The forward pass is one im2col and one matrix product for the whole batch. In
    training mode the column matrix is kept for the backward pass; in eval mode
    only the input is kept and columns are rebuilt if backward is called.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        init: InitSpec = "he",
        bias: bool = True,
        rng: RngLike = None,
    ):
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"Conv2D channels must be positive, got in_channels={in_channels}, "
                f"out_channels={out_channels}"
            )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = F.pair(kernel_size, "kernel_size")
        self.stride = F.pair(stride, "stride")
        self.padding = F.pair(padding, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(
                f"Conv2D needs kernel_size >= 1, stride >= 1, padding >= 0; got "
                f"kernel_size={kernel_size}, stride={stride}, padding={padding}"
            )
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        self.weight = Parameter(init_weight((out_channels, in_channels, kh, kw), fan_in, init, rng))
        self.bias = Parameter(np.zeros(out_channels, dtype=np.float32)) if bias else None
        self._x: Any = None
        self._col: Any = None
        self._scratch = Scratch()  # columns and their gradient, reused across steps

    def extra_repr(self) -> str:
        kh, kw = self.kernel_size
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={kh if kh == kw else (kh, kw)}"
        if self.stride != (1, 1):
            s += f", stride={self.stride[0] if self.stride[0] == self.stride[1] else self.stride}"
        if self.padding != (0, 0):
            p = self.padding
            s += f", padding={p[0] if p[0] == p[1] else p}"
        if self.bias is None:
            s += ", bias=False"
        return s

    def _reset_cache(self) -> None:
        self._x = None
        self._col = None
        self._scratch.clear()

    def forward(self, x: Any) -> Any:
        """``(N, C, H, W)`` -> ``(N, O, OH, OW)`` in the input's dtype (stored batch-last)."""
        self._check_input(x, "NCHW", C=self.in_channels)
        n = x.shape[0]
        col = im2col_checked(self, x)
        oh, ow = col.shape[3:5]
        o = self.out_channels
        y = self.weight.data.reshape(o, -1) @ col.reshape(-1, oh * ow * n)
        if self.bias is not None:
            y += self.bias.data[:, None]
        self._x = x
        self._col = col if self.training else None
        return y.reshape(o, oh, ow, n).transpose(3, 0, 1, 2)

    def _param_grads(self, gy: Any) -> tuple[Any, Any]:
        """Add into weight/bias grads; return ``(gy as (O, OH·OW·N), columns)``."""
        if self._x is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        col = self._col if self._col is not None else im2col_checked(self, self._x)
        o = self.out_channels
        gy2 = gy.transpose(1, 2, 3, 0).reshape(o, -1)  # free when gy is stored batch-last
        col2 = col.reshape(-1, gy2.shape[1])
        self.weight.grad += (gy2 @ col2.T).reshape(self.weight.grad.shape)
        if self.bias is not None:
            self.bias.grad += gy2.sum(axis=1)
        return gy2, col

    def backward(self, gy: Any) -> Any:
        """``gy (N, O, OH, OW)`` -> ``gx (N, C, H, W)``; adds into weight/bias grads."""
        gy2, col = self._param_grads(gy)
        xp = get_array_module(gy2)
        gcol = self._scratch.empty("gcol", col.shape, gy2.dtype, xp)
        weight_t = self.weight.data.reshape(self.out_channels, -1).T
        xp.matmul(weight_t, gy2, out=gcol.reshape(-1, gy2.shape[1]))
        return F.col2im(gcol, self._x.shape, self.stride, self.padding)

    def backward_params(self, gy: Any) -> None:
        """Like :meth:`backward` but only accumulates parameter gradients (no ``gx``).

        Used for a network's first layer, whose input gradient nobody needs.
        """
        self._param_grads(gy)


def im2col_checked(layer: Conv2D, x: Any) -> Any:
    """im2col for ``layer`` into its scratch memory; a window that does not fit is a named error."""
    try:
        shape = F.im2col_shape(x.shape, layer.kernel_size, layer.stride, layer.padding)
    except ValueError as exc:  # only the window-size arithmetic is relabelled
        raise ValueError(
            f"{layer!r}: input of shape {tuple(x.shape)} is too small: {exc}"
        ) from None
    out = layer._scratch.empty("col", shape, x.dtype, get_array_module(x))
    return F.im2col(x, layer.kernel_size, layer.stride, layer.padding, out=out)
