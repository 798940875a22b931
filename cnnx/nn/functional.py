"""im2col / col2im and small shape helpers, written once for NumPy and CuPy.

Both transforms are a KH×KW loop of strided-slice copies (``+=`` for col2im):
no scatter-add, so they are deterministic on the CPU and on the GPU.

Memory layout. Inside a network, activations are stored batch-last,
``(C, H, W, N)`` in memory, and handed from layer to layer as the transposed
view ``(N, C, H, W)``. With the batch innermost, every strided slice below
copies runs of ``OW·N`` (stride 1) or ``N`` contiguous values instead of rows
of ``OW``, which on NumPy is several times faster. The column matrix is laid
out ``(C, KH, KW, OH, OW, N)``, so a convolution is one matrix product
``W (O, C·KH·KW) @ col (C·KH·KW, OH·OW·N)`` whose result *is* the output in
batch-last memory. Any input layout is accepted; inputs in another layout are
first copied to batch-last order once.
"""

from __future__ import annotations

import functools
from typing import Any

from cnnx.backends import device_of, get_array_module
from cnnx.backends.primitives import matmul, pad_plain


def pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    """Return ``(value, value)`` for an int, or validate a pair of non-negative ints."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if int(value) != value:
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(value), int(value)
    try:
        a, b = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if any(isinstance(v, bool) or int(v) != v for v in (a, b)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(a), int(b)


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling window sliding over ``size``.

    ``floor((size + 2·padding − kernel) / stride) + 1``; raises ValueError when the
    window does not fit even once.
    """
    span = size + 2 * padding - kernel
    if span < 0:
        raise ValueError(
            f"window of size {kernel} does not fit an input of size {size} with padding {padding}"
        )
    return span // stride + 1


def window(start: int, count: int, stride: int) -> slice:
    """Slice of ``count`` positions from ``start`` with step ``stride``.

    The end is the last position + 1, never past it, so the slice has exactly
    ``count`` elements whatever the length of the axis it is applied to.
    """
    return slice(start, start + stride * (count - 1) + 1, stride)


@functools.lru_cache(maxsize=256)
def window_offsets(
    out_size: tuple[int, int], kernel_size: tuple[int, int], stride: tuple[int, int]
) -> tuple[tuple[int, int, slice, slice], ...]:
    """``(i, j, rows, cols)`` for every kernel offset, in row-major order.

    ``rows``/``cols`` select, for offset ``(i, j)``, the input positions that meet
    kernel element ``(i, j)`` across all ``out_size`` outputs. Cached: layers ask for
    the same geometry at every step.
    """
    (oh, ow), (kh, kw), (sh, sw) = out_size, kernel_size, stride
    return tuple((i, j, window(i, oh, sh), window(j, ow, sw)) for i in range(kh) for j in range(kw))


def ones(xp: Any, size: int, dtype: Any, like: Any = None) -> Any:
    """A vector of ``size`` ones (kept per device and dtype; never write into it).

    It is made on the device of ``like`` (an array it will be used with) when
    given, else on the current device.

    Sums along the long axis of an activation are done as products with this
    vector: BLAS's matrix-vector product is several times faster than NumPy's
    reduction for the shapes here (docs/performance.md).
    """
    dev = device_of(like) if like is not None else None
    key = (xp.__name__, size, str(dtype), _device_key(xp) if dev is None else dev.index)
    vector = _ONES.get(key)
    if vector is None:
        if len(_ONES) > 64:
            _ONES.clear()
        if dev is None:
            vector = xp.ones(size, dtype=dtype)
        else:
            with dev:
                vector = xp.ones(size, dtype=dtype)
        _ONES[key] = vector
    return vector


_ONES: dict[tuple[Any, ...], Any] = {}


def _device_key(xp: Any) -> int | None:
    cuda = getattr(xp, "cuda", None)
    return int(cuda.Device().id) if cuda is not None else None


# Below this many elements the reduction's own overhead is smaller than BLAS's.
_BLAS_SUM_MIN = 16384


def row_sums(a: Any) -> Any:
    """``a.sum(axis=1)`` for a 2-D array; as ``a @ ones`` when ``a`` is large."""
    if a.size < _BLAS_SUM_MIN:
        return a.sum(axis=1)
    return matmul(a, ones(get_array_module(a), a.shape[1], a.dtype, like=a)[:, None])[:, 0]


def column_sums(a: Any) -> Any:
    """``a.sum(axis=0)`` for a 2-D array; as ``ones @ a`` when ``a`` is large."""
    if a.size < _BLAS_SUM_MIN:
        return a.sum(axis=0)
    return matmul(ones(get_array_module(a), a.shape[0], a.dtype, like=a)[None, :], a)[0]


def batch_last(x: Any) -> Any:
    """Return ``(N, C, H, W)`` array ``x`` as a C-contiguous ``(C, H, W, N)`` array.

    Free (a view) when ``x`` is already stored batch-last, one copy otherwise.
    """
    src = x.transpose(1, 2, 3, 0)
    if src.flags.c_contiguous:
        return src
    return get_array_module(x).ascontiguousarray(src)


def im2col_shape(
    x_shape: tuple[int, ...],
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
) -> tuple[int, int, int, int, int, int]:
    """Shape ``(C, KH, KW, OH, OW, N)`` of :func:`im2col`'s result for an input shape."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    return (c, kh, kw, conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw), n)


def im2col(
    x: Any,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    out: Any = None,
) -> Any:
    """Unfold sliding windows of ``x`` into columns.

    Args:
        x: ``(N, C, H, W)`` input, any memory layout, float32 or float64.
        kernel_size: ``(KH, KW)``.
        stride: ``(SH, SW)``.
        padding: ``(PH, PW)`` zeros added on each side.
        out: optional C-contiguous array of the result's shape and dtype to fill.

    Returns:
        ``col`` of shape ``(C, KH, KW, OH, OW, N)``, C-contiguous, in ``x.dtype``:
        ``col[c, i, j, oh, ow, n] == x_padded[n, c, oh·SH + i, ow·SW + j]``.
    """
    xp = get_array_module(x)
    kh, kw = kernel_size
    sh, sw = stride
    shape = im2col_shape(x.shape, kernel_size, stride, padding)
    oh, ow = shape[3:5]
    src = batch_last(pad_plain(x, padding))  # (C, H + 2·PH, W + 2·PW, N)
    if out is None:
        col = xp.empty(shape, dtype=x.dtype)
    elif out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"im2col: out must be a C-contiguous {x.dtype} array of shape {shape}, got "
            f"{out.dtype} {out.shape}"
        )
    else:
        col = out
    for i, j, rows, cols in window_offsets((oh, ow), (kh, kw), (sh, sw)):
        col[:, i, j] = src[:, rows, cols]
    return col


def _each_position_once(size: int, out: int, kernel: int, stride: int) -> bool:
    """Whether windows along one axis cover every position exactly once."""
    return (stride == kernel or out == 1) and size == (out - 1) * stride + kernel


def col2im(
    col: Any,
    input_shape: tuple[int, int, int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
) -> Any:
    """Fold columns back into an image, summing overlapping windows (adjoint of im2col).

    Args:
        col: ``(C, KH, KW, OH, OW, N)`` columns (e.g. the gradient of im2col's output).
        input_shape: ``(N, C, H, W)`` of the image im2col was applied to.
        stride: ``(SH, SW)`` used by im2col.
        padding: ``(PH, PW)`` used by im2col; the padded border is cropped off.

    Returns:
        ``(N, C, H, W)`` array in ``col.dtype``, stored batch-last.
    """
    xp = get_array_module(col)
    n, c, h, w = input_shape
    _, kh, kw, oh, ow, _ = col.shape
    sh, sw = stride
    ph, pw = padding
    shape = (c, h + 2 * ph, w + 2 * pw, n)
    offsets = window_offsets((oh, ow), (kh, kw), (sh, sw))
    if _each_position_once(shape[1], oh, kh, sh) and _each_position_once(shape[2], ow, kw, sw):
        # Windows tile the input exactly: plain copies into uninitialised memory.
        out = xp.empty(shape, dtype=col.dtype)
        for i, j, rows, cols in offsets:
            out[:, rows, cols] = col[:, i, j]
    else:
        out = xp.zeros(shape, dtype=col.dtype)
        for i, j, rows, cols in offsets:
            out[:, rows, cols] += col[:, i, j]
    if ph or pw:
        out = out[:, ph : ph + h, pw : pw + w]
    return out.transpose(3, 0, 1, 2)


def softmax_with_log(logits: Any) -> tuple[Any, Any]:
    """Row-wise ``softmax(logits)`` and ``log(softmax(logits))`` of ``(N, C)`` logits.

    Log-sum-exp: each row's maximum is subtracted first, so ``exp`` cannot
    overflow and both results are finite for logits as large as ±1e4 in float32.
    """
    xp = get_array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    exp /= total
    shifted -= xp.log(total)
    return exp, shifted


def log_softmax(logits: Any) -> Any:
    """Row-wise ``log(softmax(logits))`` of ``(N, C)`` logits (see :func:`softmax_with_log`)."""
    return softmax_with_log(logits)[1]


def softmax(logits: Any) -> Any:
    """Row-wise softmax of ``(N, C)`` logits; rows sum to 1 (see :func:`softmax_with_log`)."""
    return softmax_with_log(logits)[0]
