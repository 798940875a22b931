"""SIGTERM as an interruption: a run stopped by ``kill`` saves its last epoch as Ctrl-C does."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Exit statuses of a process stopped by SIGINT (Ctrl-C) and SIGTERM, as shells report them.
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, inside :func:`terminate_raises`."""

    signal_number = signal.SIGTERM


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM, after it saved what it could.

    Attributes:
        checkpoint: the last.npz written on the way out, or None when no epoch had finished.
        epoch: the epoch it holds (None without one).
        terminated: whether it was SIGTERM (else Ctrl-C).
    """

    def __init__(self, checkpoint: Path | None, epoch: int | None, terminated: bool):
        super().__init__()
        self.checkpoint = checkpoint
        self.epoch = epoch
        self.terminated = terminated

    @property
    def exit_status(self) -> int:
        return EXIT_TERMINATED if self.terminated else EXIT_INTERRUPTED


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def terminate_raises() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``) in the
    main thread, so ``finally`` blocks and interrupt handlers run. Outside the main thread
    (where signal handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Inside the block, Ctrl-C and SIGTERM wait: when it ends, the first one that came
    is handled as it would have been (``KeyboardInterrupt``, :class:`Terminated`, ...).

    For writing a checkpoint. An interrupt raised inside ``zipfile`` can leave an
    archive member open, and closing the archive on the way out then raises a
    ``ValueError`` that replaces the interrupt. Outside the main thread (where signal
    handlers cannot be set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def hold(signum: int, frame: object) -> None:
        came.append(signum)

    # A handler installed from outside Python reads as None and could not be put back.
    wanted = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    previous = {signum: signal.signal(signum, hold) for signum in wanted}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if came:  # delivered even when the block failed: an interrupt is never lost
            _deliver(came[0], previous[came[0]])


def _deliver(signum: int, handler: Any) -> None:
    """Handle ``signum`` as ``handler``, the handler that was set when it came."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)  # the default action, now that it is set again
