"""Claiming an output directory without clobbering what is already there, and locking it.

A directory in use is locked with an OS file lock (``fcntl.flock``) on ``.lock`` inside
it. The operating system drops the lock when the process ends, however it ends, so
there is never a stale lock to delete by hand; the file itself only tells a second
process which PID holds the lock.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cnnx.errors import OutputExistsError, RunLockedError

LOCK_FILE = ".lock"

#: Names that do not make a directory "hold results" (the lock file).
IGNORED = frozenset({LOCK_FILE})


def visible_entries(path: Path) -> list[str]:
    """Names in ``path`` other than cnnx's own lock file, sorted."""
    return sorted(p.name for p in path.iterdir() if p.name not in IGNORED)


def claim_output_dir(path: str | Path, *, reuse: bool, how_to_reuse: str) -> Path:
    """Make ``path`` ready to receive a run's files, and return it.

    A missing or empty directory is created or used. A non-empty one is refused
    unless ``reuse`` (the caller asked to overwrite or resume what is there).

    Args:
        path: the directory (``--output-dir``).
        reuse: whether the caller may write into a non-empty directory.
        how_to_reuse: the flags that would allow it, for the message, e.g.
            ``"pass --overwrite to replace that run, or --resume it"``.

    Raises:
        OutputExistsError: ``path`` is a file, or a non-empty directory and not ``reuse``.
    """
    path = Path(path)
    check_output_dir(path, reuse=reuse, how_to_reuse=how_to_reuse)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_output_dir(path: Path, *, reuse: bool, how_to_reuse: str) -> None:
    """The checks of :func:`claim_output_dir`, without creating anything."""
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"--output-dir {path} exists and is not a directory")
    if path.is_dir() and not reuse:
        held = visible_entries(path)
        if held:
            raise OutputExistsError(
                f"--output-dir {path} already exists and is not empty ({', '.join(held[:5])}); "
                f"choose a new directory, {how_to_reuse}"
            )


class DirectoryLock:
    """An exclusive OS lock on ``<directory>/.lock`` for as long as this object holds it.

    Raises (from :meth:`acquire`):
        RunLockedError: another process holds it (the message names its PID).
    """

    def __init__(self, directory: str | Path, what: str = "run directory"):
        self.directory = Path(directory)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> DirectoryLock:
        if self._fd is not None:
            return self
        try:
            import fcntl
        except ImportError:  # not POSIX (Windows): no OS lock to take
            return self
        path = self.directory / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise RunLockedError(
                f"{self.directory} is in use by {who} (the {self.what} is locked while a "
                "cnnx process works in it); wait for it to finish, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
