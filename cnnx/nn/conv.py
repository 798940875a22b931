"""2-D convolution as im2col + one matrix product."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnx.backends import primitives as P
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

    The forward pass is ``y = W·col + b`` with ``col = im2col(x)``; the backward pass
    is ``gW = gy·colᵀ``, ``gb = Σ gy`` and ``gx = col2im(Wᵀ·gy)``. Only the input is
    kept between the passes: the primitives in :mod:`cnnx.backends.primitives` rebuild
    columns where they need them (on the CPU a cache-sized chunk at a time).
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
        self._x_padded: Any = None
        self._x_shape: tuple[int, ...] | None = None

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
        self._x_padded = self._x_shape = None

    def forward(self, x: Any) -> Any:
        """``(N, C, H, W)`` -> ``(N, O, OH, OW)`` in the input's dtype (stored batch-last)."""
        self._check_input(x, "NCHW", C=self.in_channels)
        n = x.shape[0]
        oh, ow = output_size(self, x)
        o = self.out_channels
        bias = self.bias.data if self.bias is not None else None
        # Pad once; the weight gradient reads the same padded input.
        x_padded = P.pad(x, self.padding)
        # y = W·im2col(x) + b, as (O, OH·OW·N): the output in batch-last memory.
        w = self.weight.data.reshape(o, -1)
        y = P.im2col_matmul(w, x_padded, self.kernel_size, self.stride, (0, 0), bias=bias)
        self._x_padded, self._x_shape = x_padded, x.shape
        return y.reshape(o, oh, ow, n).transpose(3, 0, 1, 2)

    def _param_grads(self, gy: Any) -> Any:
        """Add into weight/bias grads; return ``gy`` as ``(O, OH·OW·N)``."""
        if self._x_padded is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        o = self.out_channels
        gy2 = gy.transpose(1, 2, 3, 0).reshape(o, -1)  # free when gy is stored batch-last
        # gW = gy·im2col(x)ᵀ, gb = Σ gy over positions and samples.
        gw = P.matmul_im2col_t(gy2, self._x_padded, self.kernel_size, self.stride, (0, 0))
        self.weight.grad += gw.reshape(self.weight.grad.shape)
        if self.bias is not None:
            self.bias.grad += F.row_sums(gy2)
        return gy2

    def backward(self, gy: Any) -> Any:
        """``gy (N, O, OH, OW)`` -> ``gx (N, C, H, W)``; adds into weight/bias grads."""
        gy2 = self._param_grads(gy)
        weight_t = self.weight.data.reshape(self.out_channels, -1).T
        # gx = col2im(Wᵀ·gy)
        return P.col2im_matmul(
            weight_t, gy2, self._x_shape, self.kernel_size, self.stride, self.padding
        )

    def backward_params(self, gy: Any) -> None:
        """Like :meth:`backward` but only accumulates parameter gradients (no ``gx``).

        Used for a network's first layer, whose input gradient nobody needs.
        """
        self._param_grads(gy)


def output_size(layer: Conv2D, x: Any) -> tuple[int, int]:
    """``(OH, OW)`` of ``layer`` for input ``x``; a window that does not fit is a named error."""
    try:
        shape = F.im2col_shape(x.shape, layer.kernel_size, layer.stride, layer.padding)
    except ValueError as exc:  # only the window-size arithmetic is relabelled
        raise ValueError(
            f"{layer!r}: input of shape {tuple(x.shape)} is too small: {exc}"
        ) from None
    return shape[3], shape[4]
