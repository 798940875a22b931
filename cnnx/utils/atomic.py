"""Atomic file writes: a file at its final name is either the old one or the complete new one.

Every user-visible file cnnx writes (downloads, checkpoints, CLI outputs) goes through
:func:`atomic_write`: the data goes to a temporary file in the same directory, which is
flushed and fsynced and then renamed onto the final name with :func:`os.replace`. A crash,
an exception or Ctrl-C part-way through leaves any previous file untouched and no temporary
file behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]

# mode -> whether the file object is binary
_WRITE_MODES = {"wb": True, "w": False, "wt": False}

# Keeps ".{basename}.tmp-XXXXXXXX" under the usual 255-byte limit on a file name.
_MAX_BASENAME_IN_TEMP = 200

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation at the fd level
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` only when the block finishes normally.

    The temporary file is created next to ``path`` (same directory, so the final rename is
    atomic) under a name like ``.{basename}.tmp-1a2b3c4d``. On normal exit the data is
    flushed, fsynced and renamed onto ``path``; the directory is then fsynced where the
    operating system allows it. If the block raises (including ``KeyboardInterrupt``), the
    temporary file is removed, ``path`` is left exactly as it was, and the exception
    propagates.

    A file that already exists at ``path`` keeps its permission bits; a new file gets the
    usual ``0o666`` masked by the process umask. If ``path`` is a symbolic link, the file
    it points to is replaced and the link is kept.

    Args:
        path: final file name. Its directory must exist.
        mode: ``"wb"`` (default) for bytes, ``"w"`` or ``"wt"`` for text.
        encoding: text encoding for text modes; defaults to UTF-8 (not the locale's).
        newline: passed to :func:`open` for text modes.

    Yields:
        The open file object. Closing it inside the block is allowed.

    Raises:
        ValueError: ``mode`` is not a write mode, or ``encoding``/``newline`` given for a
            binary mode.
        IsADirectoryError: ``path`` is an existing directory.
        OSError: the temporary file cannot be created, written or renamed.
    """
    if mode not in _WRITE_MODES:
        raise ValueError(f"atomic_write: mode must be one of {sorted(_WRITE_MODES)}, got {mode!r}")
    binary = _WRITE_MODES[mode]
    if binary and (encoding is not None or newline is not None):
        raise ValueError("atomic_write: encoding and newline apply to text modes ('w') only")
    target = os.path.abspath(os.fspath(path))
    if os.path.islink(target):
        # Update the file the link points to and keep the link, rather than
        # replacing the user's symlink with a regular file.
        target = os.path.realpath(target)
    directory, basename = os.path.split(target)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "cannot write a file over a directory", target)

    if not os.path.isdir(directory):
        # Name the file the caller asked for, not the hidden temporary one.
        raise FileNotFoundError(
            errno.ENOENT, f"directory {directory} does not exist", os.fspath(path)
        )
    try:
        fd, tmp = _create_temp(directory, basename)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        # e.g. a read-only directory: report it against the final name.
        raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from exc
    try:
        _copy_permissions(target, fd)
        if binary:
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
    except BaseException:
        # A signal can land after os.fdopen has made the file object and before it is
        # assigned; the object, dropped on the way out, has then closed fd already, and
        # an EBADF here would replace the interrupt the caller must see.
        with contextlib.suppress(OSError):
            os.close(fd)
        _remove_quietly(tmp)
        raise

    try:
        yield f
        if f.closed:
            # The caller closed it; the data is in the OS but not necessarily on disk.
            _fsync_path(tmp)
        else:
            f.flush()
            os.fsync(f.fileno())
            f.close()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(Exception):
            f.close()
        _remove_quietly(tmp)
        raise
    _fsync_directory(directory)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`).

    Args:
        path: final file name. Its directory must exist.
        data: the complete new contents.
    """
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`).

    Args:
        path: final file name. Its directory must exist.
        text: the complete new contents.
        encoding: text encoding (default UTF-8).
        newline: passed to :func:`open`; ``None`` translates ``"\\n"`` to the platform's
            line ending.
    """
    with atomic_write(path, "w", encoding=encoding, newline=newline) as f:
        f.write(text)


def _create_temp(directory: str, basename: str) -> tuple[int, str]:
    """Create a new, empty temporary file next to the target; return (fd, path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY | _O_CLOEXEC
    stem = basename[:_MAX_BASENAME_IN_TEMP]
    for _ in range(100):
        tmp = os.path.join(directory, f".{stem}.tmp-{secrets.token_hex(4)}")
        try:
            # 0o666 lets the umask decide, as for any ordinary new file.
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", directory)


def _copy_permissions(target: str, fd: int) -> None:
    """Give the temporary file the permission bits of the file it will replace."""
    if not hasattr(os, "fchmod"):
        return
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return  # no previous file: keep the umask-derived mode
    with contextlib.suppress(OSError):
        os.fchmod(fd, mode)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | _O_BINARY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable; not possible (and not needed) on every OS."""
    if os.name == "nt":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
