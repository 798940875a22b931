"""CPU worker threads for the primitives in :mod:`cnnx.backends.primitives`.

NumPy releases the GIL inside array copies, ufuncs and BLAS calls, so Python threads can
run such work on several cores at once. A primitive cuts its work into items whose number
and boundaries depend only on the array shapes, never on the thread count, and each item
writes its own part of the output; so the result is the same, bit for bit, whether one
thread or several run the items.

The thread count is read once from the environment: ``CNNX_NUM_THREADS``, else
``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``, else the cores this
process may use. :func:`set_num_threads` changes it at run time.

While items that call BLAS run on several threads, OpenBLAS is switched to one thread of
its own (through its C API, found in the loaded libraries), so the two kinds of threads do
not compete for the same cores. Where no OpenBLAS is found, items that call BLAS run one
after another and BLAS keeps its own threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

_ENV_VARS = ("CNNX_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: Bytes of memory traffic (reads + writes) that each thread of a parallel region must
#: have at least; smaller regions use fewer threads, down to the caller alone. Waking a
#: sleeping helper thread and handing the GIL between threads costs tens to hundreds of
#: microseconds (most on virtual machines whose idle cores halt), and a helper that takes
#: an item pulls its data into another core's cache; below a few megabytes per thread
#: that costs more than the second core gives (docs/performance.md, issue 10).
PARALLEL_MIN_BYTES = 3 << 20

#: Elements in NumPy's ufunc buffer in parallel regions that ask for a small one. With
#: NumPy's default (8,192), elementwise operations on views strided outside their last
#: axes (col2im adding into windows of the input gradient, a bias added to a block of
#: output columns) ran up to 5.5 times slower than with 1,024 (docs/performance.md, issue
#: 10). The size only sets how NumPy cuts an operation into inner loops: no elementwise
#: result changes. Setting it costs a few microseconds, so only regions that gain do.
UFUNC_BUFFER_ELEMENTS = 1024

_lock = threading.Lock()
_state: dict[str, Any] = {"threads": None, "helpers": None, "blas": None}


def _default_threads() -> int:
    for name in _ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def num_threads() -> int:
    """How many threads the CPU primitives use."""
    threads = _state["threads"]
    if threads is None:
        threads = _state["threads"] = _default_threads()
    return threads


def threads_for(nbytes: int) -> int:
    """How many threads a region moving ``nbytes`` of memory should use (1 to num_threads)."""
    return max(1, min(num_threads(), int(nbytes) // max(PARALLEL_MIN_BYTES, 1)))


def set_num_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in the primitives from now on (results do not change)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {threads!r}")
    with _lock:
        _state["threads"] = threads
        helpers = _state["helpers"]
        if helpers is not None and len(helpers.inboxes) != threads - 1:
            helpers.stop()
            _state["helpers"] = None


class _Region:
    """One parallel region: items ``0 … count − 1``, taken from one counter by every
    thread that joins, the caller included."""

    def __init__(
        self,
        work: Callable[[int], None],
        count: int,
        buffer: Callable[[], contextlib.AbstractContextManager[Any]],
    ):
        self.work, self.count, self.buffer = work, count, buffer
        # next() on an itertools.count is atomic under the GIL.
        self.items = itertools.count()
        self.finished = itertools.count(1)
        self.errors: list[BaseException] = []
        # Held until the thread that finishes the last item releases it.
        self.done = threading.Lock()
        self.done.acquire()

    def run(self) -> None:
        with self.buffer():
            while True:
                k = next(self.items)
                if k >= self.count:
                    return
                try:
                    self.work(k)
                except BaseException as exc:  # re-raised in the caller
                    self.errors.append(exc)
                if next(self.finished) == self.count:
                    self.done.release()


class _Helpers:
    """``count`` helper threads, each waiting on its own queue for regions to join.

    A region costs the caller a ``put`` per helper and one lock at the end. Against the
    ``concurrent.futures`` pool this replaced (a future per task, an event to wait on),
    training steps of the zoo networks took 0.95–1.03 times as long, 0.97–0.98 for
    the CIFAR-size network at batch 64 (``bench/ab_parallel_regions.py``,
    docs/performance.md, issue 10).
    """

    def __init__(self, count: int):
        self.inboxes: list[queue.SimpleQueue[_Region | None]] = []
        for index in range(count):
            inbox: queue.SimpleQueue[_Region | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._serve, args=(inbox,), name=f"cnnx-cpu-{index}", daemon=True
            )
            thread.start()
            self.inboxes.append(inbox)

    @staticmethod
    def _serve(inbox: queue.SimpleQueue[_Region | None]) -> None:
        while True:
            region = inbox.get()
            if region is None:
                return
            region.run()
            # Not held while waiting: the region's work keeps the caller's arrays alive.
            del region

    def stop(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)


def _helpers() -> _Helpers:
    helpers = _state["helpers"]
    if helpers is None:
        with _lock:
            helpers = _state["helpers"]
            if helpers is None:
                helpers = _state["helpers"] = _Helpers(num_threads() - 1)
    return helpers


def _forget_helpers() -> None:
    # A forked child has only the thread that forked: its parent's helpers would never
    # take the regions queued for them (nor could a lock held by one be released). The
    # child starts its own helpers when it needs them.
    global _lock
    _lock = threading.Lock()
    _state["helpers"] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helpers)


class _OpenBLAS:
    """``get_num_threads``/``set_num_threads`` of the OpenBLAS NumPy loaded, via ctypes."""

    _NAMES = (
        ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
        ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
        ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
        ("openblas_get_num_threads", "openblas_set_num_threads"),
    )

    def __init__(self, get: Any, set_: Any, corename: str = ""):
        self.get = get
        self.set = set_
        self.corename = corename

    @classmethod
    def find(cls) -> _OpenBLAS | None:
        # NumPy, imported above, has loaded its BLAS, so the library is in the maps.
        try:
            with open("/proc/self/maps") as f:
                paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
        except OSError:
            return None
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for get_name, set_name in cls._NAMES:
                get, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
                if get is not None and set_ is not None:
                    get.restype = ctypes.c_int
                    set_.argtypes = [ctypes.c_int]
                    return cls(get, set_, cls._corename(lib, get_name))
        return None

    @staticmethod
    def _corename(lib: Any, get_name: str) -> str:
        # The same prefix and suffix as the thread functions found.
        name = get_name.replace("get_num_threads", "get_corename")
        function = getattr(lib, name, None)
        if function is None:
            return ""
        function.restype = ctypes.c_char_p
        return (function() or b"").decode(errors="replace")


def _openblas() -> _OpenBLAS | None:
    blas = _state["blas"]
    if blas is None:
        blas = _state["blas"] = _OpenBLAS.find() or False
    return blas or None


def openblas_corename() -> str:
    """The CPU kernel family of NumPy's OpenBLAS, lower case (``"skylakex"``), or ``""``."""
    blas = _openblas()
    return blas.corename.lower() if blas is not None else ""


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    blas = _openblas()
    if blas is None:
        yield
        return
    before = blas.get()
    if before != 1:
        blas.set(1)
    try:
        yield
    finally:
        if before != 1:
            blas.set(before)


@contextlib.contextmanager
def _ufunc_buffer() -> Iterator[None]:
    # NumPy keeps the buffer size in a context variable, so this is private to the thread.
    before = np.setbufsize(UFUNC_BUFFER_ELEMENTS)
    try:
        yield
    finally:
        np.setbufsize(before)


def parallel_for(
    work: Callable[[int], None],
    count: int,
    uses_blas: bool = False,
    nbytes: int | None = None,
    small_ufunc_buffer: bool = False,
) -> None:
    """Run ``work(0) ... work(count - 1)``, on several threads when there are several items.

    Every item must write only its own part of the outputs, so that the order and
    the thread an item runs on do not matter. ``uses_blas``: the items call matrix
    products (see the module docstring). ``nbytes``: the memory all items read and
    write together; small regions use fewer threads (:func:`threads_for`). Which
    thread runs an item never changes a result. Exceptions from an item are raised here.
    ``small_ufunc_buffer``: the items run with NumPy's ufunc buffer at
    :data:`UFUNC_BUFFER_ELEMENTS` elements, for elementwise operations on views strided
    outside their last axes; such items must not reduce (a sum's order would follow
    the buffer size).

    The calling thread works too, taking items from the same counter as the helper
    threads: when the machine is busy and a helper is slow to be scheduled, the caller
    simply does more of the items instead of waiting for it.
    """
    threads = num_threads() if nbytes is None else threads_for(nbytes)
    buffer = _ufunc_buffer if small_ufunc_buffer else contextlib.nullcontext
    # Items that call BLAS always run with one OpenBLAS thread, on the pool or not, so
    # each matrix product is computed the same way whatever the thread counts; without
    # an OpenBLAS to switch, they run one after another and BLAS keeps its own threads.
    with _one_blas_thread() if uses_blas else contextlib.nullcontext():
        if count <= 1 or threads <= 1 or (uses_blas and _openblas() is None):
            with buffer():
                for k in range(count):
                    work(k)
            return
        _share(work, count, min(threads, count) - 1, buffer)


def _share(
    work: Callable[[int], None],
    count: int,
    helpers: int,
    buffer: Callable[[], contextlib.AbstractContextManager[Any]],
) -> None:
    region = _Region(work, count, buffer)
    for inbox in _helpers().inboxes[:helpers]:
        inbox.put(region)
    region.run()
    # Items a helper has taken may still be running; a helper that wakes after the
    # last item finds none left and only drops the region.
    region.done.acquire()
    if region.errors:
        raise region.errors[0]


_local = threading.local()


def thread_buffer(name: str, size: int, dtype: Any) -> Any:
    """A flat NumPy work array of at least ``size`` elements, private to the calling thread.

    Reused across calls (a fresh multi-megabyte array would be page-faulted anew each
    time); the contents are garbage, and are overwritten by the next request of the
    same thread.
    """
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    key = (name, np.dtype(dtype).str)
    array = buffers.get(key)
    if array is None or array.size < size:
        array = buffers[key] = np.empty(size, dtype=dtype)
    return array[:size]
