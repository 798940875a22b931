"""Named primitives the layers call: what each computes is one line of math; how is here.

Every primitive has a plain version, written once in ``xp`` code exactly as its formula
reads (``*_plain``), and, where it pays on the CPU, a NumPy execution strategy that
computes the same thing with less memory traffic and on several cores:

- convolution (``im2col_matmul``, ``matmul_im2col_t``, ``col2im_matmul``): the column
  matrix is never built whole. The output rows are cut into chunks whose columns fit in
  the cache; each chunk is unfolded, multiplied and (in the backward pass) folded back
  while it is still there, and chunks run on several threads (:mod:`cnnx.backends.threads`).
  Where it copies less, the forward and weight gradient unfold KW shifted copies of the
  input rows instead of KH·KW, and take each output row's columns as a slice of them;
  with a row stride of 1 the input gradient is one product per input row over the KH
  output-gradient rows that reach it, which needs KW additions per row instead of a
  fold of KH·KW.
- max pooling (``maxpool_forward``, ``maxpool_backward``): separable first-maximum
  comparisons with uint8 index arithmetic, channel by channel on several threads.
- ReLU (``relu_forward``, ``relu_backward``) and dropout (``uniform_float32``,
  ``scaled_mask``, ``multiply``): split over threads.
- matrix products (``matmul``, ``matmul_tn``) and optimizer rules
  (``elementwise_update``): large ones in blocks or parts on several threads.

Which version runs is decided by the array module and the shapes only (and, for the
column blocks of a convolution product, by the kernel family of NumPy's OpenBLAS): CuPy
always runs the plain version, and no CPU result depends on the thread count (elementwise
operations and random draws, whose values do not depend on how they are split, may be
split by it). Pooling, ReLU, dropout, random draws and the optimizer rules agree with
the plain versions exactly; products agree up to float
rounding (BLAS may add a dot product's terms in another order for pieces of another
size, and a weight gradient's sum over positions is taken chunk by chunk), always in
the same way for the same shapes, so the results are deterministic.
``tests/test_primitives.py`` checks both.

Activations are batch-last, ``(C, H, W, N)`` in memory, as described in
:mod:`cnnx.nn.functional`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from cnnx.backends import recycling
from cnnx.backends.devices import get_array_module
from cnnx.backends.threads import (
    num_threads,
    openblas_corename,
    parallel_for,
    thread_buffer,
    threads_for,
)

Pair = tuple[int, int]

#: Bytes of columns per chunk in the CPU convolution: about what stays in a core's cache
#: while the chunk is unfolded and multiplied.
CONV_CHUNK_BYTES = 2 << 20
#: Fewest chunks a CPU convolution is cut into (where it has enough output rows).
CONV_MIN_CHUNKS = 4
#: Convolutions with fewer bytes of columns than this run as one chunk.
CONV_MIN_SPLIT_BYTES = 1 << 19
#: Work this small (bytes of columns, or multiply-adds × item size) skips the threads.
TINY_BYTES = 1 << 16
#: Output positions per block of the sum a weight-gradient product runs over: OpenBLAS
#: was up to 3.5 times slower on one product over 10,000 positions with few input rows
#: (a first layer's 9 or 25) than on the same sum in blocks of 2,048 (docs/performance.md).
CONV_GW_BLOCK_COLS = 2048
#: Products with fewer inputs per position than this (first layers: C·KH·KW with C ≤ 3)
#: take blocks whose two operands (K inputs and O outputs per position) fill about
#: CONV_GW_BLOCK_BYTES, rounded down to a power of two of positions, at least
#: CONV_GW_MIN_BLOCK_COLS: 27 + 32 (the CIFAR-size first layer) ran 0.67–0.81 times as
#: long in blocks of 1,024 as of 2,048, and 9 + 8 (`mnist_cnn`'s first) 0.82–0.92 in
#: blocks of 4,096; layers with 72–288 inputs were 2–5% slower in blocks of 1,024
#: (docs/performance.md).
CONV_GW_SMALL_K = 32
CONV_GW_BLOCK_BYTES = 384 << 10
CONV_GW_MIN_BLOCK_COLS = 1024
#: The forward and weight gradient of a convolution unfold a piece of output rows as KW
#: shifted copies of its input rows (:func:`_unfold_shifted`) instead of KH·KW, where
#: that copies at least this many bytes less per output row: the columns of consecutive
#: output rows overlap, so each row's column matrix is a plain slice of the shifted
#: rows, at the price of one product per output row (docs/performance.md).
SHIFTED_ROWS_MIN_SAVED_BYTES = 64 << 10
#: With a row stride of 1, the input gradient is taken one input row at a time
#: (:func:`_col2im_by_input_rows`) instead of folding im2col's columns; 0 turns it off.
#: The zoo's layers ran it 0.55–1.09 times as long (docs/performance.md).
GX_BY_INPUT_ROWS = 1
#: A convolution product ``(M, K) @ (K, N)`` with at least CONV_GEMM_MIN_K terms per dot
#: product runs in blocks of columns of at most SMALL_GEMM_MACS multiply-adds, a multiple
#: of SMALL_GEMM_COL_MULTIPLE columns, where NumPy's OpenBLAS is one of SMALL_GEMM_CORES.
#: Those kernels multiply a product of at most 10^6 multiply-adds without packing its
#: operands (OpenBLAS's sgemm_small_kernel_permit for SkylakeX), which for a convolution's
#: small M or K is most of the work: on an AVX-512 EPYC one thread ran LeNet-5's
#: second-layer products (16 × 150 × 2,560 forward, 150 × 16 × 2,560 input gradient) 0.62
#: and 0.72 times as long in blocks of 384 columns, and blocks of 512 (over 10^6) as long
#: as one call; on an Ice Lake Xeon the forward took 1.13 times as long in blocks, the
#: first layer's 6 × 25 product 0.42. With OpenBLAS's Haswell kernels the blocks were
#: 1.07–1.40 times slower than one call, so other kernels keep one call; so do products
#: with K = 9, which were slower in blocks (docs/performance.md). A stride-1 input
#: gradient (GX_BY_INPUT_ROWS) takes other products, which are not cut.
CONV_GEMM_MIN_K = 16
SMALL_GEMM_MACS = 1_000_000
SMALL_GEMM_COL_MULTIPLE = 64
SMALL_GEMM_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})
#: Multiply-adds per block of a CPU matrix product split over threads. At 2^25 the
#: CIFAR-size dense layer (64 × 4,096 × 128, exactly 2^25) ran in one block on one core;
#: in two blocks its three products took 0.65–0.89 times as long in three runs
#: (docs/performance.md).
MATMUL_BLOCK_MACS = 1 << 24
#: Most blocks a CPU matrix product is split into.
MATMUL_MAX_BLOCKS = 2
#: The L1 data cache, for copies that read many rows at once: bytes between addresses
#: that share a set, bytes per line, and the ways of a set (x86 cores since Intel Skylake
#: and AMD Zen: 64 sets of 64-byte lines, 8 ways or more).
L1_SET_SPAN_BYTES = 4096
L1_LINE_BYTES = 64
L1_WAYS = 8
#: Most elements per call of an optimizer's update rule on the CPU. A rule
#: runs a dozen array operations, several of them making temporaries; on pieces of
#: 2^17 elements (512 KiB of float32) each operation finds its operands in the core's
#: cache, where on the whole buffer every one of them streamed megabytes through memory
#: (docs/performance.md, issue 10).
UPDATE_PIECE_ELEMENTS = 1 << 17
#: Times a CPU max pooling's regions count their memory for their thread count
#: (:func:`threads_for`): the separable reduction reads every input twice (a comparison,
#: then a maximum). Counted once, the CIFAR-size network's second pooling at batch 64
#: (4 MiB of input) ran on one thread, 1.6 ms forward and 1.9 backward in training steps;
#: counted twice it takes 1.1 and 1.2 (docs/performance.md, issue 10).
POOL_PASSES = 2
#: Bytes of input per work item in the CPU max pooling.
POOL_CHUNK_BYTES = 1 << 20
#: Fewest random numbers per thread in a split draw (:func:`uniform_float32`).
RANDOM_SPLIT_MIN_NUMBERS = 1 << 18


def _window(start: int, count: int, stride: int) -> slice:
    return slice(start, start + stride * (count - 1) + 1, stride)


def _im2col_fn() -> Any:
    from cnnx.nn import functional as F  # layers' module; imported late (it imports backends)

    return F


# --------------------------------------------------------------------------- matrix product


def matmul_plain(a: Any, b: Any) -> Any:
    """``a @ b`` for 2-D arrays."""
    return a @ b


def _matmul_blocks(m: int, k: int, n: int) -> tuple[bool, list[slice]]:
    """How a CPU product ``(M, K) @ (K, N)`` is cut: ``(along_rows, spans)``.

    The spans cut the output's rows (``along_rows``) or columns, whichever side is
    longer; their number depends on the shapes only, never on the thread count.
    """
    blocks = int(min(MATMUL_MAX_BLOCKS, max(1, (m * n * k) // MATMUL_BLOCK_MACS), max(m, n)))
    along_rows = m >= n
    length = m if along_rows else n
    step = -(-length // blocks)
    return along_rows, [slice(s, min(s + step, length)) for s in range(0, length, step)]


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` for 2-D arrays ``(M, K) @ (K, N)``; see :func:`matmul_plain`.

    On the CPU a large product is cut into blocks of output rows or columns
    (:func:`_matmul_blocks`) that run on several threads. Every output element is still
    one dot product over all of K, so the result does not depend on the thread count.
    """
    xp = get_array_module(a, b)
    if xp is not np:
        return matmul_plain(a, b)
    m, k = a.shape
    n = b.shape[1]
    dtype = np.result_type(a.dtype, b.dtype)
    if m * n * k * dtype.itemsize < TINY_BYTES:
        return matmul_plain(a, b)
    along_rows, spans = _matmul_blocks(m, k, n)
    out = recycling.empty((m, n), dtype=dtype)

    def block(index: int) -> None:
        part = spans[index]
        if along_rows:
            np.matmul(a[part], b, out=out[part])
        else:
            np.matmul(a, b[:, part], out=out[:, part])

    parallel_for(block, len(spans), uses_blas=True)
    return out


def matmul_tn_add_plain(a: Any, b: Any, out: Any) -> None:
    """``out += aᵀ @ b`` for ``a (K, M)``, ``b (K, N)``, ``out (M, N)``: a dense layer's
    ``gW += gyᵀ·x``."""
    out += a.T @ b


def matmul_tn_add(a: Any, b: Any, out: Any) -> None:
    """``out += aᵀ @ b``; see :func:`matmul_tn_add_plain`.

    On the CPU each block of the product (:func:`_matmul_blocks`) is added into its part
    of ``out`` by the thread that computed it, while the block is still in that core's
    cache, instead of adding the whole product afterwards on one thread: a dense layer's
    weight gradient is megabytes (9,216 → 128: 4.5 MiB). The product is taken in the
    orientation of ``out``: the transposed product ``(bᵀ @ a)ᵀ`` is faster for a
    flattened batch-last ``b``, but adding it transposes on the way (docs/performance.md).
    """
    xp = get_array_module(a, b)
    k, m = a.shape
    n = b.shape[1]
    if xp is not np or m * n * k * out.itemsize < TINY_BYTES:
        matmul_tn_add_plain(a, b, out)
        return
    along_rows, spans = _matmul_blocks(m, k, n)
    if len(spans) == 1:
        out += matmul(a.T, b)
        return
    at = a.T

    def block(index: int) -> None:
        part = spans[index]
        rows, cols = (part, slice(None)) if along_rows else (slice(None), part)
        target = out[rows, cols]
        # A scratch kept per thread: a fresh multi-megabyte product would be
        # page-faulted anew at every step.
        product = thread_buffer("matmul_tn_add", target.size, out.dtype).reshape(target.shape)
        np.matmul(at[rows], b[:, cols], out=product)
        target += product

    parallel_for(block, len(spans), uses_blas=True)


# --------------------------------------------------------------------------- convolution


def im2col_matmul_plain(
    w: Any, x: Any, kernel_size: Pair, stride: Pair, padding: Pair, bias: Any = None
) -> Any:
    """``w @ im2col(x) (+ bias)``: the convolution as one matrix product.

    Args:
        w: ``(O, C·KH·KW)`` weights.
        x: ``(N, C, H, W)`` input, any layout.
        bias: optional ``(O,)``, added to every column.

    Returns:
        ``(O, OH·OW·N)`` in ``x.dtype``: the output, batch-last.
    """
    F = _im2col_fn()
    col = F.im2col(x, kernel_size, stride, padding)
    y = w @ col.reshape(w.shape[1], -1)
    if bias is not None:
        y += bias[:, None]
    return y


def matmul_im2col_t_plain(gy: Any, x: Any, kernel_size: Pair, stride: Pair, padding: Pair) -> Any:
    """``gy @ im2col(x)ᵀ``: the weight gradient ``(O, C·KH·KW)`` from ``gy (O, OH·OW·N)``."""
    F = _im2col_fn()
    col = F.im2col(x, kernel_size, stride, padding)
    return gy @ col.reshape(-1, gy.shape[1]).T


def col2im_matmul_plain(
    wt: Any, gy: Any, x_shape: tuple[int, ...], kernel_size: Pair, stride: Pair, padding: Pair
) -> Any:
    """``col2im(wt @ gy)``: the input gradient ``(N, C, H, W)`` (batch-last) of a convolution.

    Args:
        wt: ``(C·KH·KW, O)`` transposed weights.
        gy: ``(O, OH·OW·N)`` output gradient, batch-last.
        x_shape: ``(N, C, H, W)`` of the convolution's input.
    """
    F = _im2col_fn()
    shape = F.im2col_shape(x_shape, kernel_size, stride, padding)
    gcol = (wt @ gy).reshape(shape)
    return F.col2im(gcol, x_shape, stride, padding)


class _ConvPlan:
    """How the CPU convolution cuts one geometry into row chunks (shapes only).

    ``fold``: the chunks are for col2im, whose even chunks must touch disjoint input rows.
    """

    def __init__(
        self,
        x_shape: tuple[int, ...],
        kernel_size: Pair,
        stride: Pair,
        padding: Pair,
        itemsize: int,
        fold: bool,
    ):
        n, c, h, w = x_shape
        (kh, kw), sh, (ph, pw) = kernel_size, stride[0], padding
        F = _im2col_fn()
        self.shape = F.im2col_shape(x_shape, kernel_size, stride, padding)
        self.oh, self.ow = self.shape[3], self.shape[4]
        self.k = c * kh * kw
        self.n, self.c = n, c
        self.padded = (c, h + 2 * ph, w + 2 * pw, n)
        self.kernel_size = (kh, kw)
        row_bytes = self.k * self.ow * n * itemsize
        # Chunks k and k + 2 must touch disjoint input rows, so that col2im can fold the
        # even chunks, then the odd ones, in parallel: kh <= (rows + 1)·sh.
        fewest = max(1, -(-kh // sh) - 1) if fold else 1
        by_bytes = CONV_CHUNK_BYTES // max(row_bytes, 1)
        # With shifted rows (_unfold_shifted), r output rows take (r - 1)·SH + KH input
        # rows of C·KW·OW·N values, and chunks and pieces are sized by those bytes.
        in_row_bytes = c * kw * self.ow * n * itemsize
        self.shifted = not fold and (kh - sh) * in_row_bytes >= SHIFTED_ROWS_MIN_SAVED_BYTES
        if self.shifted:
            spare = CONV_CHUNK_BYTES - (kh - sh) * in_row_bytes
            by_bytes = max(0, spare // max(sh * in_row_bytes, 1))
        # At least CONV_MIN_CHUNKS chunks where the rows allow, so that threads share
        # even a small layer.
        by_count = -(-self.oh // CONV_MIN_CHUNKS)
        self.rows = max(fewest, min(by_bytes, by_count))
        if row_bytes * self.oh < CONV_MIN_SPLIT_BYTES:
            self.rows = self.oh  # too little work to share: one chunk
        # So little that BLAS would not start threads of its own anyway: the plain
        # version computes exactly what one chunk would, without the thread machinery.
        self.tiny = row_bytes * self.oh < TINY_BYTES
        self.col_bytes = row_bytes * self.oh
        self.starts = list(range(0, self.oh, self.rows))
        # Pieces of a chunk that fit the cache: several rows, or, where one output row
        # alone is larger than CONV_CHUNK_BYTES, part of a row (not for col2im, whose
        # folding ran slower on part-rows, with shorter runs to add into).
        self.piece_rows = max(1, by_bytes)
        parts = 1 if by_bytes or fold else -(-row_bytes // CONV_CHUNK_BYTES)
        self.piece_width = -(-self.ow // parts)

    @property
    def chunks(self) -> int:
        return len(self.starts)

    def pieces(self, index: int) -> list[tuple[int, int, int, int]]:
        """Cache-sized ``(first row, rows, first column, columns)`` of chunk ``index``.

        A piece of fewer than ``OW`` columns is one row high, so that its outputs are
        one contiguous run of the ``(O, OH·OW·N)`` matrix.
        """
        first = self.starts[index]
        last = min(first + self.rows, self.oh)
        out = []
        for r0 in range(first, last, self.piece_rows):
            rows = min(self.piece_rows, last - r0)
            if self.piece_width >= self.ow:
                out.append((r0, rows, 0, self.ow))
            else:
                out += [
                    (r, 1, c0, min(self.piece_width, self.ow - c0))
                    for r in range(r0, r0 + rows)
                    for c0 in range(0, self.ow, self.piece_width)
                ]
        return out

    def offset(self, r0: int, c0: int) -> int:
        """Column of output ``(r0, c0)`` in the ``(O, OH·OW·N)`` matrix."""
        return (r0 * self.ow + c0) * self.n

    def to_k_order(self, w: Any) -> Any:
        """``(O, C·KH·KW)`` weights with their columns in this plan's order of K.

        Shifted-row columns list their inputs by kernel row, then channel, then kernel
        column, ``(KH, C, KW)``; im2col's order is ``(C, KH, KW)``.
        """
        return self._swap_c_kh(w, self.c, self.kernel_size[0]) if self.shifted else w

    def from_k_order(self, g: Any) -> Any:
        """``(O, K)`` in this plan's order of K back in im2col's ``(C, KH, KW)`` order."""
        return self._swap_c_kh(g, self.kernel_size[0], self.c) if self.shifted else g

    def _swap_c_kh(self, a: Any, first: int, second: int) -> Any:
        """``(O, first·second·KW)`` with its two outer K axes swapped, C-contiguous."""
        o = a.shape[0]
        a4 = a.reshape(o, first, second, self.kernel_size[1]).transpose(0, 2, 1, 3)
        return np.ascontiguousarray(a4).reshape(o, self.k)


def _matmul_in_column_blocks(a: Any, b: Any, out: Any) -> None:
    """``out[...] = a @ b`` (NumPy, 2-D) in blocks of columns of ``b`` and ``out``.

    Every output element is still one dot product over all of ``a``'s columns; only the
    calls are cut (by shapes alone, see :func:`_column_block`).
    """
    m, k = a.shape
    n = b.shape[1]
    step = _column_block(m, k, n)
    if step >= n:
        np.matmul(a, b, out=out)
        return
    for c0 in range(0, n, step):
        np.matmul(a, b[:, c0 : c0 + step], out=out[:, c0 : c0 + step])


def _column_block(m: int, k: int, n: int) -> int:
    """Columns per block of an ``(m, k) @ (k, n)`` product; ``n`` means one call (shapes only).

    Where NumPy's OpenBLAS has small-matrix kernels (:data:`SMALL_GEMM_CORES`), a block
    is the most columns that keep it within :data:`SMALL_GEMM_MACS` multiply-adds.
    """
    if not SMALL_GEMM_MACS or k < CONV_GEMM_MIN_K or openblas_corename() not in SMALL_GEMM_CORES:
        return n
    step = SMALL_GEMM_MACS // (m * k)
    step -= step % SMALL_GEMM_COL_MULTIPLE
    return step if SMALL_GEMM_COL_MULTIPLE <= step < n else n


def pad_plain(x: Any, padding: Pair) -> Any:
    """``x (N, C, H, W)`` with PH zero rows above and below and PW zero columns each side.

    Returns ``(N, C, H + 2·PH, W + 2·PW)`` in ``x.dtype``, stored batch-last (the layout
    cnnx's layers work in); ``x`` itself without padding.
    """
    ph, pw = padding
    if not (ph or pw):
        return x
    n, c, h, w = x.shape
    padded = get_array_module(x).zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
    padded[:, ph : ph + h, pw : pw + w] = x.transpose(1, 2, 3, 0)
    return padded.transpose(3, 0, 1, 2)


def pad(x: Any, padding: Pair) -> Any:
    """The zero-padded input, as :func:`pad_plain`, in the memory the CPU convolution reads.

    On the CPU the result is stored batch-last (:func:`_padded_batch_last`; a view of
    ``x`` when ``x`` is already batch-last and unpadded), so that a convolution's
    forward and weight gradient, given it with zero padding, read it in place instead
    of each making their own padded copy.
    """
    if get_array_module(x) is not np:
        return pad_plain(x, padding)
    return _padded_batch_last(x, padding).transpose(3, 0, 1, 2)


def _padded_batch_last(x: Any, padding: Pair) -> Any:
    """``x`` as ``(C, H + 2·PH, W + 2·PW, N)`` C-contiguous memory with a zero border."""
    ph, pw = padding
    n, c, h, w = x.shape
    xt = x.transpose(1, 2, 3, 0)
    if not (ph or pw):
        if xt.flags.c_contiguous:
            return xt
        src = np.empty((c, h, w, n), dtype=x.dtype)
        _copy_batch_last(src, xt)
        return src
    src = recycling.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
    inner = src[:, ph : ph + h, pw : pw + w]
    groups = _channel_groups(x.shape, x.dtype.itemsize)

    def group(index: int) -> None:
        _copy_batch_last(inner[groups[index]], xt[groups[index]])

    parallel_for(group, len(groups), nbytes=2 * x.nbytes)
    return src


def _copy_batch_last(dst: Any, src: Any) -> None:
    """``dst[...] = src`` for ``(C, H, W, N)`` views, in blocks of samples the L1 cache holds.

    Copying an ``(N, C, H, W)`` batch into batch-last memory reads N samples at once. Where
    a sample's stride is a multiple of 4 KiB (a 3×32×32 float32 image is 12 KiB) all N
    rows fall into the same L1 set, which holds only L1_WAYS of them: a CIFAR-size batch
    of 64 copied about 3 times faster in blocks of 8 samples than in one call
    (docs/performance.md).
    """
    n = src.shape[-1]
    # Rows a stride apart reach span / gcd(stride, span) sets, at most one per line.
    shared = math.gcd(abs(src.strides[-1]), L1_SET_SPAN_BYTES)
    block = L1_WAYS * (L1_SET_SPAN_BYTES // max(shared, L1_LINE_BYTES))
    if block >= n:
        dst[...] = src
        return
    for a in range(0, n, block):
        dst[..., a : a + block] = src[..., a : a + block]


def _unfold(
    src: Any, plan: _ConvPlan, piece: tuple[int, int, int, int], kernel_size: Pair, stride: Pair
) -> Any:
    """im2col of one piece of output positions into this thread's buffer, as ``(K, cols)``."""
    r0, rows, c0, width = piece
    (kh, kw), (sh, sw) = kernel_size, stride
    cols = rows * width * plan.n
    col = thread_buffer("conv_col", plan.k * cols, src.dtype)
    col6 = col.reshape(plan.c, kh, kw, rows, width, plan.n)
    # The KH×KW loop of strided slices, as one strided view and one copy: a single NumPy
    # call holds the GIL once instead of KH·KW times, so chunks on other threads run.
    # The view is made by the ndarray constructor over src's (C-contiguous) memory: NumPy's
    # as_strided builds it in Python code, 4 times longer with the GIL held.
    s_c, s_h, s_w, s_n = src.strides
    windows = np.ndarray(
        col6.shape,
        dtype=src.dtype,
        buffer=src,
        offset=r0 * sh * s_h + c0 * sw * s_w,
        strides=(s_c, s_h, s_w, s_h * sh, s_w * sw, s_n),
    )
    windows.flags.writeable = False
    np.copyto(col6, windows)
    return col.reshape(plan.k, cols)


def _unfold_shifted(
    src: Any, plan: _ConvPlan, piece: tuple[int, int, int, int], kernel_size: Pair, stride: Pair
) -> Any:
    """KW shifted copies of the input rows of one piece, as ``((R - 1)·SH + KH)·C·KW`` rows.

    Row ``(h, c, j)`` holds ``x[c, r0·SH + h, (c0 + x)·SW + j, n]`` for the piece's
    ``width·N`` columns ``(x, n)``. Output row ``r0 + t`` of the piece needs inputs
    ``(i, c, j)`` from input row ``t·SH + i``: its ``(K, width·N)`` column matrix is rows
    ``t·SH·C·KW`` to ``t·SH·C·KW + K`` of this one, in the order ``(KH, C, KW)``.
    """
    r0, rows, c0, width = piece
    (kh, kw), (sh, sw) = kernel_size, stride
    rows_in = (rows - 1) * sh + kh
    shape = (rows_in, plan.c, kw, width, plan.n)
    buf = thread_buffer("conv_col", math.prod(shape), src.dtype).reshape(shape)
    s_c, s_h, s_w, s_n = src.strides
    shifted = np.ndarray(
        shape,
        dtype=src.dtype,
        buffer=src,
        offset=r0 * sh * s_h + c0 * sw * s_w,
        strides=(s_h, s_c, s_w, s_w * sw, s_n),
    )
    shifted.flags.writeable = False
    np.copyto(buf, shifted)
    return buf.reshape(rows_in * plan.c * kw, width * plan.n)


def _piece_columns(
    src: Any, plan: _ConvPlan, piece: tuple[int, int, int, int], kernel_size: Pair, stride: Pair
) -> Any:
    """Yield ``(first output column, (K, cols) column matrix)`` for one piece, in order.

    One matrix for the whole piece (im2col), or one per output row, slices of the
    piece's shifted rows; K is in the plan's order (:meth:`_ConvPlan.to_k_order`).
    """
    r0, rows, c0, _ = piece
    if not plan.shifted:
        yield plan.offset(r0, c0), _unfold(src, plan, piece, kernel_size, stride)
        return
    shifted = _unfold_shifted(src, plan, piece, kernel_size, stride)
    per_row = plan.c * kernel_size[1] * stride[0]
    for t in range(rows):
        yield plan.offset(r0 + t, c0), shifted[t * per_row : t * per_row + plan.k]


@functools.lru_cache(maxsize=128)
def _conv_plan(
    x_shape: tuple[int, ...],
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    itemsize: int,
    fold: bool,
) -> _ConvPlan:
    return _ConvPlan(x_shape, kernel_size, stride, padding, itemsize, fold)


def _plan(
    x_shape: Any, kernel_size: Any, stride: Any, padding: Any, itemsize: int, fold: bool = False
) -> _ConvPlan:
    return _conv_plan(
        tuple(x_shape), tuple(kernel_size), tuple(stride), tuple(padding), int(itemsize), fold
    )


def _use_chunks(xp: Any, plan: _ConvPlan) -> bool:
    # One chunk too goes this way on the CPU: its product then runs with one BLAS
    # thread, like every product in the primitives (see cnnx.backends.threads).
    return xp is np and not plan.tiny


def im2col_matmul(
    w: Any, x: Any, kernel_size: Pair, stride: Pair, padding: Pair, bias: Any = None
) -> Any:
    """``w @ im2col(x) (+ bias)``, shape ``(O, OH·OW·N)``; see :func:`im2col_matmul_plain`."""
    xp = get_array_module(x)
    plan = _plan(x.shape, kernel_size, stride, padding, x.itemsize)
    if not _use_chunks(xp, plan):
        return im2col_matmul_plain(w, x, kernel_size, stride, padding, bias)
    src = _padded_batch_last(x, padding)
    y = recycling.empty((w.shape[0], plan.oh * plan.ow * plan.n), dtype=x.dtype)
    w = plan.to_k_order(w)

    def chunk(index: int) -> None:
        for piece in plan.pieces(index):
            for a, col in _piece_columns(src, plan, piece, kernel_size, stride):
                out = y[:, a : a + col.shape[1]]
                _matmul_in_column_blocks(w, col, out)
                if bias is not None:
                    out += bias[:, None]

    parallel_for(
        chunk,
        plan.chunks,
        uses_blas=True,
        nbytes=plan.col_bytes + y.nbytes,
        small_ufunc_buffer=bias is not None,  # the bias is added to strided blocks of y
    )
    return y


def _gw_block_cols(k: int, o: int, itemsize: int) -> int:
    """Positions per block of a weight-gradient sum with K inputs and O outputs (shapes only)."""
    if k >= CONV_GW_SMALL_K:
        return CONV_GW_BLOCK_COLS
    fit = CONV_GW_BLOCK_BYTES // ((k + o) * itemsize)
    return max(CONV_GW_MIN_BLOCK_COLS, 1 << (fit.bit_length() - 1) if fit else 0)


def matmul_im2col_t(gy: Any, x: Any, kernel_size: Pair, stride: Pair, padding: Pair) -> Any:
    """``gy @ im2col(x)ᵀ``, shape ``(O, C·KH·KW)``; see :func:`matmul_im2col_t_plain`.

    On the CPU the sum over output positions is taken in blocks of
    positions within each chunk (:func:`_gw_block_cols`), and the chunks' sums are added
    in chunk order: the same value up to float rounding, and the same bits on any number
    of threads.
    """
    xp = get_array_module(gy)
    plan = _plan(x.shape, kernel_size, stride, padding, x.itemsize)
    if not _use_chunks(xp, plan):
        return matmul_im2col_t_plain(gy, x, kernel_size, stride, padding)
    src = _padded_batch_last(x, padding)
    # Each chunk's sum is computed as col · gyᵀ, the transpose of gy · colᵀ: OpenBLAS ran
    # this orientation faster on the zoo's layers (see docs/performance.md).
    partial = np.empty((plan.chunks, plan.k, gy.shape[0]), dtype=gy.dtype)
    step = _gw_block_cols(plan.k, gy.shape[0], gy.itemsize)

    def chunk(index: int) -> None:
        total = partial[index]
        more = thread_buffer("conv_gw", total.size, gy.dtype).reshape(total.shape)
        first = True
        for piece in plan.pieces(index):
            for a, col in _piece_columns(src, plan, piece, kernel_size, stride):
                cols = col.shape[1]
                for b0 in range(0, cols, step):
                    block = slice(b0, min(b0 + step, cols))
                    part = gy[:, a + block.start : a + block.stop].T
                    if first:
                        np.matmul(col[:, block], part, out=total)
                        first = False
                    else:
                        total += np.matmul(col[:, block], part, out=more)

    parallel_for(chunk, plan.chunks, uses_blas=True, nbytes=plan.col_bytes + gy.nbytes)
    total = partial[0]
    for index in range(1, plan.chunks):
        total += partial[index]
    return plan.from_k_order(total.T)


def col2im_matmul(
    wt: Any, gy: Any, x_shape: tuple[int, ...], kernel_size: Pair, stride: Pair, padding: Pair
) -> Any:
    """``col2im(wt @ gy)``, shape ``(N, C, H, W)`` batch-last; see :func:`col2im_matmul_plain`.

    On the CPU, with a row stride of 1, each input row is one product
    (:func:`_col2im_by_input_rows`). Otherwise each chunk of output rows is multiplied
    and folded back while its columns are in the cache. Even chunks touch disjoint input
    rows, so they are folded in parallel, then the odd ones. Either way every input
    element receives its terms in the same order on any number of threads.
    """
    xp = get_array_module(gy)
    plan = _plan(x_shape, kernel_size, stride, padding, gy.itemsize, fold=True)
    if not _use_chunks(xp, plan):
        return col2im_matmul_plain(wt, gy, x_shape, kernel_size, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    _, c, h, w = x_shape
    if GX_BY_INPUT_ROWS and sh == 1 and kh > 1:
        gx = _col2im_by_input_rows(wt, gy, plan, kernel_size, sw)
        if ph or pw:
            gx = gx[:, ph : ph + h, pw : pw + w]
        return gx.transpose(3, 0, 1, 2)
    gx = recycling.zeros(plan.padded, dtype=gy.dtype)

    def chunk(index: int) -> None:
        # A chunk is at least KH/SH − 1 rows; it is worked through piece by piece, in
        # order, so that each piece of columns is folded while still in the cache.
        for r0, rows, c0, width in plan.pieces(index):
            a, cols = plan.offset(r0, c0), rows * width * plan.n
            gcol = thread_buffer("conv_gcol", plan.k * cols, gy.dtype)
            _matmul_in_column_blocks(wt, gy[:, a : a + cols], gcol.reshape(plan.k, cols))
            gcol6 = gcol.reshape(c, kh, kw, rows, width, plan.n)
            for i in range(kh):
                for j in range(kw):
                    rows_in, cols_in = (
                        _window(r0 * sh + i, rows, sh),
                        _window(c0 * sw + j, width, sw),
                    )
                    gx[:, rows_in, cols_in] += gcol6[:, i, j]

    # Each parity folds about half of the columns into gx.
    nbytes = (plan.col_bytes + gy.nbytes + gx.nbytes) // 2
    for parity in (0, 1):
        indices = range(parity, plan.chunks, 2)
        parallel_for(
            lambda k, idx=indices: chunk(idx[k]),
            len(indices),
            uses_blas=True,
            nbytes=nbytes,
            small_ufunc_buffer=True,  # the folds add into strided windows of gx
        )
    if ph or pw:
        gx = gx[:, ph : ph + h, pw : pw + w]
    return gx.transpose(3, 0, 1, 2)


def _col2im_by_input_rows(wt: Any, gy: Any, plan: _ConvPlan, kernel_size: Pair, sw: int) -> Any:
    """``col2im(wt @ gy)`` for a row stride of 1, one product per input row; padded ``gx``.

    Input row ``h`` receives ``Σ_i W_iᵀ · gy[h − i]`` over the kernel rows ``i``: one
    product of the ``(C·KW, KH·O)`` weights, kernel rows side by side (last first),
    with the KH output-gradient rows ``h − KH + 1 … h`` stacked as ``(KH·O, OW·N)``.
    The result holds, for each kernel column ``j``, what lands on columns ``j + x·SW``
    of row ``h``: KW additions per row, where folding im2col's columns takes KH·KW.
    Rows are grouped (by shapes only); a group copies the output-gradient rows it needs
    (with zeros above and below the image) part of the columns at a time, and writes
    only its own rows of ``gx``, so groups run in parallel and every element receives
    its terms in the same order on any number of threads.

    Returns:
        ``(C, H + 2·PH, W + 2·PW, N)`` in ``gy.dtype``.
    """
    (kh, kw), o, n, c = kernel_size, gy.shape[0], plan.n, plan.c
    oh, ow = plan.oh, plan.ow
    hp = plan.padded[1]
    gx = recycling.zeros(plan.padded, dtype=gy.dtype)
    # (C·KW, KH·O): column block s holds kernel row KH − 1 − s, matching stack row s.
    wcat = wt.reshape(c, kh, kw, o)[:, ::-1].transpose(0, 2, 1, 3)
    wcat = np.ascontiguousarray(wcat).reshape(c * kw, kh * o)
    gy3 = gy.reshape(o, oh, ow * n)
    rows = max(1, -(-hp // CONV_MIN_CHUNKS))
    if plan.col_bytes < CONV_MIN_SPLIT_BYTES:
        rows = hp
    stack_row_bytes = (rows + kh - 1) * o * n * gy.itemsize
    width = max(1, min(ow, CONV_CHUNK_BYTES // max(stack_row_bytes, 1)))
    starts = range(0, hp, rows)

    def group(index: int) -> None:
        a = starts[index]
        b = min(a + rows, hp)
        # Output rows a − KH + 1 … b − 1 feed input rows a … b − 1.
        t0, t1 = a - kh + 1, b
        for x0 in range(0, ow, width):
            cols = min(width, ow - x0)
            size = (t1 - t0) * o * cols * n
            stack = thread_buffer("conv_gy_stack", size, gy.dtype).reshape(t1 - t0, o, cols * n)
            lo, hi = max(t0, 0), min(t1, oh)
            stack[: lo - t0] = 0
            stack[hi - t0 :] = 0
            rows_out = gy3[:, lo:hi, x0 * n : (x0 + cols) * n]
            np.copyto(stack[lo - t0 : hi - t0], rows_out.transpose(1, 0, 2))
            part = thread_buffer("conv_gx_row", c * kw * cols * n, gy.dtype)
            part2 = part.reshape(c * kw, cols * n)
            part4 = part.reshape(c, kw, cols, n)
            for r in range(a, b):
                np.matmul(wcat, stack[r - a : r - a + kh].reshape(kh * o, cols * n), out=part2)
                for j in range(kw):
                    gx[:, r, _window(x0 * sw + j, cols, sw)] += part4[:, j]

    parallel_for(
        group,
        len(starts),
        uses_blas=True,
        nbytes=(plan.col_bytes + gy.nbytes + gx.nbytes) // 2,
        small_ufunc_buffer=True,  # the additions go into strided windows of gx
    )
    return gx


# --------------------------------------------------------------------------- max pooling


def maxpool_forward_plain(x: Any, kernel_size: Pair, stride: Pair) -> tuple[Any, Any]:
    """Max over each window, and the index (row-major) of each window's first maximum.

    Args:
        x: ``(N, C, H, W)`` input, any layout.

    Returns:
        ``(y, saved)``: ``y`` ``(C, OH, OW, N)`` (batch-last memory), and what
        :func:`maxpool_backward` needs.
    """
    xp = get_array_module(x)
    F = _im2col_fn()
    src = F.batch_last(x)
    oh, ow = _pool_output(x.shape, kernel_size, stride)
    windows = F.window_offsets((oh, ow), kernel_size, stride)
    y = src[:, windows[0][2], windows[0][3]].copy()
    arg = xp.zeros(y.shape, dtype=xp.uint8)
    for k, (_, _, rows, cols) in enumerate(windows[1:], start=1):
        candidate = src[:, rows, cols]
        better = candidate > y
        arg[better] = k
        xp.maximum(y, candidate, out=y)
    return y, ("plain", arg)


def maxpool_backward_plain(
    gy: Any, saved: Any, x_shape: tuple[int, ...], kernel_size: Pair, stride: Pair
) -> Any:
    """Each window's gradient to its first maximum: ``(N, C, H, W)`` batch-last from ``gy``."""
    xp = get_array_module(gy)
    F = _im2col_fn()
    n, c, h, w = x_shape
    _, arg = saved
    gyt = gy.transpose(1, 2, 3, 0)
    gx = xp.zeros((c, h, w, n), dtype=gy.dtype)
    for k, (_, _, rows, cols) in enumerate(F.window_offsets(arg.shape[1:3], kernel_size, stride)):
        gx[:, rows, cols] += gyt * (arg == k)
    return gx.transpose(3, 0, 1, 2)


def _pool_output(x_shape: tuple[int, ...], kernel_size: Pair, stride: Pair) -> Pair:
    (kh, kw), (sh, sw) = kernel_size, stride
    return (x_shape[2] - kh) // sh + 1, (x_shape[3] - kw) // sw + 1


def first_max(candidates: list[Any], out: Any = None, arg: Any = None) -> tuple[Any, Any]:
    """Elementwise maximum of same-shaped arrays, and the index of the first one attaining it.

    Returns ``(best, arg)`` with ``arg`` uint8 (ties keep the lower index, since only a
    strictly greater value replaces). ``out``/``arg``: optional arrays to fill.
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
    """Send each element of ``g`` to ``outputs[arg]`` and zero to the others (one-hot).

    The last output gets ``g`` minus the others, exact because the routing is one-hot;
    multiplying by the uint8/boolean mask directly is faster than converting it first.
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


def _channel_groups(x_shape: tuple[int, ...], itemsize: int) -> list[slice]:
    """Channel ranges of about :data:`POOL_CHUNK_BYTES` of input each (shapes only)."""
    n, c, h, w = x_shape
    per_channel = h * w * n * itemsize
    size = max(1, POOL_CHUNK_BYTES // max(per_channel, 1))
    return [slice(c0, min(c0 + size, c)) for c0 in range(0, c, size)]


def maxpool_forward(x: Any, kernel_size: Pair, stride: Pair) -> tuple[Any, Any]:
    """See :func:`maxpool_forward_plain` (same ``y``; ``saved`` is the strategy's own).

    On the CPU, non-overlapping windows (stride = kernel) are reduced separably: the
    first maximum across each window row, then across rows, which is the first maximum
    in row-major order with KH + KW − 2 comparisons; channel groups run on several threads.
    """
    xp = get_array_module(x)
    if xp is not np or tuple(kernel_size) != tuple(stride):
        return maxpool_forward_plain(x, kernel_size, stride)
    F = _im2col_fn()
    (kh, kw) = kernel_size
    oh, ow = _pool_output(x.shape, kernel_size, stride)
    src = F.batch_last(x)[:, : oh * kh, : ow * kw]
    c, n = src.shape[0], src.shape[3]
    y = recycling.empty((c, oh, ow, n), dtype=x.dtype)
    col_arg = recycling.empty((c, oh * kh, ow, n), dtype=np.uint8)
    row_arg = recycling.empty((c, oh, ow, n), dtype=np.uint8)
    groups = _channel_groups(tuple(x.shape), x.dtype.itemsize)

    def group(index: int) -> None:
        g = groups[index]
        part = src[g]
        rows = thread_buffer("pool_rows", part.shape[0] * oh * kh * ow * n, x.dtype)
        row_max, _ = first_max(
            [part[:, :, j::kw] for j in range(kw)],
            out=rows.reshape(part.shape[0], oh * kh, ow, n),
            arg=col_arg[g],
        )
        first_max([row_max[:, i::kh] for i in range(kh)], out=y[g], arg=row_arg[g])

    parallel_for(group, len(groups), nbytes=POOL_PASSES * (x.nbytes + y.nbytes + col_arg.nbytes))
    return y, ("separable", col_arg, row_arg)


def maxpool_backward(
    gy: Any, saved: Any, x_shape: tuple[int, ...], kernel_size: Pair, stride: Pair
) -> Any:
    """See :func:`maxpool_backward_plain`."""
    if saved[0] == "plain":
        return maxpool_backward_plain(gy, saved, x_shape, kernel_size, stride)
    _, col_arg, row_arg = saved
    n, c, h, w = x_shape
    (kh, kw) = kernel_size
    gyt = gy.transpose(1, 2, 3, 0)  # (C, OH, OW, N)
    _, oh, ow, _ = gyt.shape
    cropped = h != oh * kh or w != ow * kw
    gx = (recycling.zeros if cropped else recycling.empty)((c, h, w, n), dtype=gy.dtype)
    inner = gx[:, : oh * kh, : ow * kw]
    groups = _channel_groups(tuple(x_shape), gy.dtype.itemsize)

    def group(index: int) -> None:
        g = groups[index]
        channels = g.stop - g.start
        rows = thread_buffer("pool_grows", channels * oh * kh * ow * n, gy.dtype)
        g_rows = rows.reshape(channels, oh * kh, ow, n)
        route(gyt[g], row_arg[g], [g_rows[:, i::kh] for i in range(kh)])
        part = inner[g]
        route(g_rows, col_arg[g], [part[:, :, j::kw] for j in range(kw)])

    parallel_for(group, len(groups), nbytes=POOL_PASSES * (gx.nbytes + gy.nbytes + col_arg.nbytes))
    return gx.transpose(3, 0, 1, 2)


# --------------------------------------------------------------------------- ReLU


def relu_forward_plain(x: Any, out: Any = None) -> Any:
    """``max(x, 0)`` elementwise (into ``out`` when given, which may be ``x``)."""
    return get_array_module(x).maximum(x, 0, out=out)


def relu_backward_plain(gy: Any, y: Any, out: Any = None) -> Any:
    """``gy · (y > 0)`` elementwise (into ``out`` when given, which may be ``gy``)."""
    return get_array_module(gy).multiply(gy, y > 0, out=out)


def _memory_order(a: Any) -> Any:
    """A 1-D view of ``a``'s memory when it is C-contiguous or batch-last, else None."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    if a.ndim == 4:
        t = a.transpose(1, 2, 3, 0)
        if t.flags.c_contiguous:
            return t.reshape(-1)
    if a.ndim == 2 and a.T.flags.c_contiguous:
        return a.T.reshape(-1)
    return None


def _same_layout(*arrays: Any) -> bool:
    first = arrays[0]
    return all(a.shape == first.shape and a.strides == first.strides for a in arrays[1:])


def _shared_flat(*arrays: Any) -> list[Any] | None:
    """1-D views of the arrays' memory, element for element, when they share one shape
    and memory order (:func:`_memory_order`); else None."""
    if not _same_layout(*arrays):
        return None
    flats = [_memory_order(a) for a in arrays]
    return None if any(f is None for f in flats) else flats


def _zeros_like_chunk(size: int, dtype: Any) -> Any:
    # NumPy's maximum against a scalar is several times slower than against an array
    # of the same layout, so one read-only zero array is kept and sliced.
    key = np.dtype(dtype).str
    zeros = _ZEROS.get(key)
    if zeros is None or zeros.size < size:
        zeros = _ZEROS[key] = np.zeros(size, dtype=dtype)
        zeros.flags.writeable = False
    return zeros[:size]


_ZEROS: dict[str, Any] = {}


def _elementwise_parts(size: int, nbytes: int) -> list[slice]:
    # Elementwise results do not depend on how the elements are split, so the split
    # may follow the thread count: one part per thread the traffic pays for.
    parts = threads_for(nbytes)
    step = -(-size // parts)
    step += -step % 16
    return [slice(a, min(a + step, size)) for a in range(0, size, step)]


def _by_channels(work: Any, out: Any, arrays: int) -> Any:
    """Run ``work(channels)`` over ranges of the channel axis of ``(N, C, H, W)`` arrays.

    For elementwise operations on arrays that share no flat memory order (a cropped view
    of a padded gradient beside a batch-last activation): one range per thread that the
    traffic of ``arrays`` arrays of ``out``'s size pays for. Returns ``out``.
    """
    channels = out.shape[1]
    parts = min(channels, threads_for(arrays * out.nbytes))
    step = -(-channels // parts)
    ranges = [slice(c, min(c + step, channels)) for c in range(0, channels, step)]
    parallel_for(lambda index: work(ranges[index]), len(ranges))
    return out


def relu_forward(x: Any, inplace: bool = False) -> Any:
    """``max(x, 0)``, written over ``x`` when ``inplace``; see :func:`relu_forward_plain`."""
    xp = get_array_module(x)
    out = x if inplace else (recycling.empty_like(x) if xp is np else None)
    flats = _shared_flat(x, out) if xp is np else None
    if flats is None:
        if xp is np and x.ndim == 4:
            return _by_channels(lambda c: np.maximum(x[:, c], 0, out=out[:, c]), out, 2)
        return relu_forward_plain(x, out=out)
    flat_x, flat_out = flats
    parts = _elementwise_parts(flat_x.size, 2 * x.nbytes)
    zeros = _zeros_like_chunk(max(p.stop - p.start for p in parts), x.dtype)

    def part(index: int) -> None:
        p = parts[index]
        np.maximum(flat_x[p], zeros[: p.stop - p.start], out=flat_out[p])

    parallel_for(part, len(parts))
    return out


def relu_backward(gy: Any, y: Any, inplace: bool = False) -> Any:
    """``gy · (y > 0)``, written over ``gy`` when ``inplace``; see :func:`relu_backward_plain`."""
    xp = get_array_module(gy)
    out = gy if inplace else (recycling.empty_like(y) if xp is np else None)
    flats = _shared_flat(gy, y, out) if xp is np else None
    if flats is None:
        if xp is np and gy.ndim == 4:
            return _by_channels(
                lambda c: np.multiply(gy[:, c], y[:, c] > 0, out=out[:, c]), out, 3
            )
        return relu_backward_plain(gy, y, out=out)
    flat_g, flat_y, flat_out = flats
    parts = _elementwise_parts(flat_g.size, 3 * gy.nbytes)

    def part(index: int) -> None:
        p = parts[index]
        np.multiply(flat_g[p], flat_y[p] > 0, out=flat_out[p])

    parallel_for(part, len(parts))
    return out


# --------------------------------------------------------------------------- dropout


def uniform_float32_plain(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """``rng.random(shape, dtype=float32)``: uniform numbers in [0, 1), on the host."""
    return rng.random(shape, dtype=np.float32)


def uniform_float32(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """See :func:`uniform_float32_plain`: the same numbers, and ``rng`` left in the same state.

    A large draw from a PCG64 generator (NumPy's default) is cut into parts of an even
    number of values, drawn on several threads: part ``i`` by a copy of the generator
    advanced (``PCG64.advance``, a jump, not a loop) by the 64-bit outputs the parts
    before it use, two float32 values each. The numbers are those of one call whatever
    the split, so the split may follow the thread count. Other bit generators, and a
    PCG64 holding half of an output from an odd-sized draw before, draw in one call.
    """
    size = math.prod(shape)
    bit_generator = rng.bit_generator
    parts = min(num_threads(), size // RANDOM_SPLIT_MIN_NUMBERS)
    if type(bit_generator) is not np.random.PCG64 or parts < 2:
        return uniform_float32_plain(rng, shape)
    state = bit_generator.state
    if state["has_uint32"]:
        return uniform_float32_plain(rng, shape)
    out = recycling.empty(shape, np.float32)
    flat = out.reshape(-1)
    step = -(-size // parts)
    step += step % 2
    starts = list(range(0, size, step))
    generators = [rng]
    for start in starts[1:]:
        jumped = np.random.PCG64(0)  # its state is replaced below
        jumped.state = state
        jumped.advance(start // 2)
        generators.append(np.random.Generator(jumped))

    def part(index: int) -> None:
        start = starts[index]
        generators[index].random(out=flat[start : start + step], dtype=np.float32)

    parallel_for(part, len(starts))
    bit_generator.state = generators[-1].bit_generator.state
    return out


def scaled_mask_plain(keep: Any, scale: float, like: Any) -> Any:
    """``keep · scale`` in ``like``'s dtype, shape and memory order.

    ``keep``: 0/1 ``uint8`` or ``bool`` of ``like``'s shape, on ``like``'s device.
    """
    xp = get_array_module(like)
    out = xp.empty_like(like)
    out[...] = keep
    out *= like.dtype.type(scale)
    return out


def scaled_mask(keep: Any, scale: float, like: Any) -> Any:
    """See :func:`scaled_mask_plain` (the same two steps; on the CPU in recycled memory,
    the scaling split over threads)."""
    if get_array_module(like) is not np or like.nbytes < TINY_BYTES:
        return scaled_mask_plain(keep, scale, like)
    out = recycling.empty_like(like)
    # One NumPy call that casts and changes the memory order at once: much faster
    # than a multiply doing the same.
    out[...] = keep
    return _multiply_into(out, like.dtype.type(scale), out)


def multiply_plain(a: Any, b: Any) -> Any:
    """``a · b`` elementwise, for arrays of one shape and dtype."""
    return a * b


def multiply(a: Any, b: Any) -> Any:
    """See :func:`multiply_plain`; on the CPU, arrays in one memory order are split over
    threads and the product is stored in that order."""
    if get_array_module(a) is not np or a.nbytes < TINY_BYTES:
        return multiply_plain(a, b)
    return _multiply_into(a, b, recycling.empty_like(a))


def _multiply_into(a: Any, b: Any, out: Any) -> Any:
    """``out[...] = a · b`` (``b`` an array of ``a``'s layout, or a scalar); returns ``out``."""
    scalar = np.ndim(b) == 0
    flats = _shared_flat(a, out) if scalar else _shared_flat(a, b, out)
    if flats is None:
        np.multiply(a, b, out=out)
        return out
    flat_a, flat_out = flats[0], flats[-1]
    parts = _elementwise_parts(flat_a.size, len(flats) * a.nbytes)

    def part(index: int) -> None:
        p = parts[index]
        np.multiply(flat_a[p], b if scalar else flats[1][p], out=flat_out[p])

    parallel_for(part, len(parts))
    return out


# --------------------------------------------------------------------------- optimizer


def elementwise_update(update: Any, p: Any, g: Any, state: dict[str, Any]) -> None:
    """``update(p, g, state)`` for an update rule that is elementwise in flat arrays.

    On the CPU, large flat buffers are cut into equal pieces of at most
    :data:`UPDATE_PIECE_ELEMENTS`, as many for each thread, that run on several
    threads; every element is computed exactly as in one call, whatever the thread
    count. ``state`` must already hold every array the rule uses.
    """
    if get_array_module(p) is not np or p.ndim != 1 or p.size <= UPDATE_PIECE_ELEMENTS:
        update(p, g, state)
        return
    nbytes = p.nbytes * (2 + 2 * len(state))
    # Equal pieces, as many per thread: the split never changes an element's result.
    threads = threads_for(nbytes)
    count = -(-p.size // UPDATE_PIECE_ELEMENTS)
    count = -(-count // threads) * threads
    step = -(-p.size // count)
    step += -step % 16
    pieces = [slice(a, min(a + step, p.size)) for a in range(0, p.size, step)]

    def piece(index: int) -> None:
        s = pieces[index]
        update(p[s], g[s], {key: value[s] for key, value in state.items()})

    parallel_for(piece, len(pieces), nbytes=nbytes)
