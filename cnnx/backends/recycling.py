"""Large CPU arrays whose memory is handed out again once nothing uses it any more.

A training step allocates the same large arrays every time (the input gradients of a
convolution and of a pooling layer, a padded input). glibc gives a large freed block
back to the operating system when it was ``mmap``'d or sits at the top of the heap
above its trim threshold; the next step's array of the same size then takes a page
fault on every 4 KiB page it touches, and the kernel zero-fills each page. Which blocks
end up there depends on everything else the process has allocated, so one optimizer's
state is enough to turn a step with no faults into one with hundreds
(docs/performance.md, issue 10). Keeping such blocks in the process and handing them
out again takes that lottery out of the step.

A block is handed out as a new ndarray over a new ctypes array that shares the block's
memory (a fresh "owner" per array). Every view NumPy makes of that ndarray, or of its
views, keeps it and therefore its owner alive: NumPy's chain of ``base`` objects stops
at the first one that is not an ndarray, and a ``memoryview`` of the block itself would
not do, since NumPy follows it back to the block. A weak reference to the owner puts
the block back among the idle ones when the last of those arrays is gone. A block is
therefore never handed out while anything can still read or write its memory: a
gradient a user keeps (a hook, a list of tensors) keeps its block out of circulation,
and the next request of that size takes a new one.

:func:`empty` and :func:`zeros` are :func:`empty_plain` and :func:`zeros_plain`
(NumPy's own) with recycled memory; ``tests/test_recycling.py`` checks that they agree
and when a block may be reused. The primitives use them on the CPU only: CuPy keeps a
memory pool of its own.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import threading
import weakref
from typing import Any

import numpy as np

#: Arrays smaller than this come from NumPy directly. glibc hands out the memory freed
#: last, by an array of any size, which for arrays this small may still be in a core's
#: cache; and once glibc has raised its mmap threshold past them (see :class:`_Block`),
#: it reuses their memory without page faults.
RECYCLE_MIN_BYTES = 1 << 20
#: Most bytes kept idle; past it, the blocks idle longest are let go (back to glibc,
#: once no array uses them).
RECYCLE_IDLE_BYTES = 256 << 20
#: A request that needs a new block (a new size: another batch size, evaluation after
#: training) first lets go of the blocks that have stayed idle while this many arrays
#: were handed out: sizes no longer in use. Only new blocks trigger it, so a training
#: loop whose sizes repeat keeps every block, however many arrays one step takes.
RECYCLE_STALE_LEASES = 128


class _Block:
    __slots__ = ("idle_order", "idle_since_lease", "memory", "nbytes", "owner_type")

    def __init__(self, nbytes: int):
        # A throwaway array of the same size first. glibc gives a block this large
        # pages of its own (mmap), and when it frees such a block it raises its
        # threshold for doing so, after which it serves that size from its heap. Kept
        # blocks are never freed, so without the throwaway glibc would go on mapping,
        # and page-faulting, every array of that size that is not recycled, at every
        # step; with it, the block below comes from the heap.
        np.empty(nbytes, dtype=np.uint8)
        self.memory = np.empty(nbytes, dtype=np.uint8)
        self.nbytes = nbytes
        self.owner_type = ctypes.c_char * nbytes
        self.idle_order = 0  # when it came back, among all returns
        self.idle_since_lease = 0  # how many arrays had been handed out when it came back


# Re-entrant: a weak reference's callback may run on this thread while it holds the
# lock (a garbage collection started by an allocation below frees a recycled array).
_lock = threading.RLock()
_idle: dict[int, list[_Block]] = {}  # by size in bytes; the last returned is last
_leased: dict[int, tuple[weakref.ref[Any], _Block]] = {}  # by id of the weak reference
_idle_bytes = [0]
_counts = {"new": 0, "reused": 0}
_returns = itertools.count(1)


def empty_plain(shape: Any, dtype: Any) -> np.ndarray:
    """``np.empty(shape, dtype)``: a C-contiguous array with arbitrary contents."""
    return np.empty(shape, dtype=dtype)


def zeros_plain(shape: Any, dtype: Any) -> np.ndarray:
    """``np.zeros(shape, dtype)``."""
    return np.zeros(shape, dtype=dtype)


def empty(shape: Any, dtype: Any) -> np.ndarray:
    """As :func:`empty_plain`; arrays of at least :data:`RECYCLE_MIN_BYTES` reuse idle memory."""
    shape, dtype = _shape(shape), np.dtype(dtype)
    if math.prod(shape) * dtype.itemsize < RECYCLE_MIN_BYTES:
        return empty_plain(shape, dtype)
    return _lease(shape, dtype)


def zeros(shape: Any, dtype: Any) -> np.ndarray:
    """As :func:`zeros_plain`, with the memory of :func:`empty`."""
    shape, dtype = _shape(shape), np.dtype(dtype)
    if math.prod(shape) * dtype.itemsize < RECYCLE_MIN_BYTES:
        return zeros_plain(shape, dtype)
    array = _lease(shape, dtype)
    ctypes.memset(array.ctypes.data, 0, array.nbytes)  # faster than fill(0)
    return array


def _shape(shape: Any) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)


def _lease(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An array over an idle block of its size, or over a new block."""
    nbytes = math.prod(shape) * dtype.itemsize
    with _lock:
        blocks = _idle.get(nbytes)
        block = blocks.pop() if blocks else None
        if block is not None:
            _idle_bytes[0] -= nbytes
            _counts["reused"] += 1
        else:
            _counts["new"] += 1
            _let_go_of_stale()
    if block is None:
        block = _Block(nbytes)
    owner = block.owner_type.from_buffer(block.memory)
    array = np.ndarray(shape, dtype=dtype, buffer=owner)
    lease = weakref.ref(owner, _give_back)
    with _lock:
        _leased[id(lease)] = (lease, block)
    return array


def empty_like(a: np.ndarray) -> np.ndarray:
    """As ``np.empty_like(a)`` (same shape, dtype and memory order), with recycled memory
    where ``a`` is C-contiguous, batch-last ``(N, C, H, W)`` or a transposed matrix."""
    if a.flags.c_contiguous:
        return empty(a.shape, a.dtype)
    if a.ndim == 4 and a.transpose(1, 2, 3, 0).flags.c_contiguous:
        n, c, h, w = a.shape
        return empty((c, h, w, n), a.dtype).transpose(3, 0, 1, 2)
    if a.ndim == 2 and a.T.flags.c_contiguous:
        return empty(a.shape[::-1], a.dtype).T
    return np.empty_like(a)


def counts() -> dict[str, int]:
    """How many recycled arrays got a new block (``"new"``) and an idle one (``"reused"``)."""
    with _lock:
        return dict(_counts)


def idle_bytes() -> int:
    """Bytes of memory kept for reuse that no array uses now."""
    return _idle_bytes[0]


def release_idle() -> None:
    """Let go of every idle block (back to glibc); arrays in use are not affected."""
    with _lock:
        _idle.clear()
        _idle_bytes[0] = 0


def _give_back(lease: weakref.ref[Any]) -> None:
    with _lock:
        entry = _leased.pop(id(lease), None)
        if entry is None:
            return
        block = entry[1]
        block.idle_order = next(_returns)
        block.idle_since_lease = _counts["new"] + _counts["reused"]
        _idle.setdefault(block.nbytes, []).append(block)
        _idle_bytes[0] += block.nbytes
        while _idle_bytes[0] > RECYCLE_IDLE_BYTES:
            _let_go_of_oldest()


def _let_go_of_stale() -> None:
    leases = _counts["new"] + _counts["reused"]
    while _idle_bytes[0] and _oldest_idle().idle_since_lease < leases - RECYCLE_STALE_LEASES:
        _let_go_of_oldest()


def _oldest_idle() -> _Block:
    """The block idle longest; needs an idle block."""
    # Each size's list is in the order its blocks came back, so its oldest is first.
    return min((b[0] for b in _idle.values() if b), key=lambda block: block.idle_order)


def _let_go_of_oldest() -> int:
    """Drop the block idle longest; returns its size in bytes."""
    nbytes = _oldest_idle().nbytes
    blocks = _idle[nbytes]
    blocks.pop(0)
    if not blocks:
        del _idle[nbytes]
    _idle_bytes[0] -= nbytes
    return nbytes
