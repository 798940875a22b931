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

from typing import Any

from cnnx.backends import get_array_module


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


def _window(start: int, count: int, stride: int) -> slice:
    # Slice of ``count`` positions starting at ``start`` with step ``stride``;
    # the end is the last position + 1, never past it, so the slice has exactly
    # ``count`` elements whatever the input length.
    return slice(start, start + stride * (count - 1) + 1, stride)


def batch_last(x: Any) -> Any:
    """Return ``(N, C, H, W)`` array ``x`` as a C-contiguous ``(C, H, W, N)`` array.

    Free (a view) when ``x`` is already stored batch-last, one copy otherwise.
    """
    src = x.transpose(1, 2, 3, 0)
    if src.flags.c_contiguous:
        return src
    return get_array_module(x).ascontiguousarray(src)


def im2col(
    x: Any,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
) -> Any:
    """Unfold sliding windows of ``x`` into columns.

    Args:
        x: ``(N, C, H, W)`` input, any memory layout, float32 or float64.
        kernel_size: ``(KH, KW)``.
        stride: ``(SH, SW)``.
        padding: ``(PH, PW)`` zeros added on each side.

    Returns:
        ``col`` of shape ``(C, KH, KW, OH, OW, N)``, C-contiguous, in ``x.dtype``:
        ``col[c, i, j, oh, ow, n] == x_padded[n, c, oh·SH + i, ow·SW + j]``.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    if ph or pw:
        src = xp.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
        src[:, ph : ph + h, pw : pw + w] = x.transpose(1, 2, 3, 0)
    else:
        src = batch_last(x)
    col = xp.empty((c, kh, kw, oh, ow, n), dtype=x.dtype)
    for i in range(kh):
        rows = _window(i, oh, sh)
        for j in range(kw):
            col[:, i, j] = src[:, rows, _window(j, ow, sw)]
    return col


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
    out = xp.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=col.dtype)
    for i in range(kh):
        rows = _window(i, oh, sh)
        for j in range(kw):
            out[:, rows, _window(j, ow, sw)] += col[:, i, j]
    if ph or pw:
        out = out[:, ph : ph + h, pw : pw + w]
    return out.transpose(3, 0, 1, 2)


def log_softmax(logits: Any) -> Any:
    """Row-wise ``log(softmax(logits))`` for ``(N, C)`` logits, via log-sum-exp.

    Subtracting each row's maximum first keeps ``exp`` from overflowing, so the
    result is finite for logits as large as ±1e4 in float32.
    """
    xp = get_array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: Any) -> Any:
    """Row-wise softmax of ``(N, C)`` logits; rows sum to 1."""
    return get_array_module(logits).exp(log_softmax(logits))
