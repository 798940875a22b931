"""MNIST handwritten digits: find the files, download them verified, check them, load them.

Files are looked for in one directory (see :func:`mnist_dir`), each accepted gzipped
(``name.gz``) or not. Missing files are downloaded from a list of mirrors; a download
becomes a cached file only when its SHA-256 matches the official one. Files placed by hand
are checked for structure (magic numbers, shapes, counts, label range), not hashed, since
recompressed copies are common and fine.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnx._version import __version__
from cnnx.datasets.idx import IDX_DTYPES, read_idx
from cnnx.errors import DatasetError
from cnnx.utils.atomic import atomic_write
from cnnx.utils.progress import Progress

__all__ = [
    "DEFAULT_MIRRORS",
    "MNIST_FILES",
    "MNIST_SHA256",
    "DownloadError",
    "download_verified",
    "load_mnist",
    "mnist_dir",
    "mnist_mirrors",
]

#: split -> (images file, labels file), names without ``.gz``.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: SHA-256 of the official gzipped files, the only bytes a download is accepted as.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: Base URLs tried in order; each serves ``<name>.gz``.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

DATA_DIR_ENV = "CNNX_DATA_DIR"
MIRRORS_ENV = "CNNX_MNIST_MIRRORS"

IMAGE_SIZE = 28
_IMAGES_MAGIC = 0x0803  # 2051: uint8, 3 dimensions
_LABELS_MAGIC = 0x0801  # 2049: uint8, 1 dimension
_NUM_CLASSES = 10
_IDX_CODES = {dtype: code for code, dtype in IDX_DTYPES.items()}

USER_AGENT = f"cnnx/{__version__} (Python {sys.version_info[0]}.{sys.version_info[1]} urllib)"
DOWNLOAD_TIMEOUT_S = 30.0
#: No MNIST file is near this; stops a misbehaving server from filling the disk.
DOWNLOAD_MAX_BYTES = 256 << 20
_CHUNK = 64 << 10
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_MAX_REASON_CHARS = 160
_SHORT_REASON_CHARS = 60  # in the one-line "files not found" message


class DownloadError(DatasetError):
    """No URL gave a file with the expected SHA-256.

    Attributes:
        dest: the file that was to be written (nothing was written there).
        attempts: ``(url, reason)`` for every URL tried, in order.
    """

    def __init__(self, message: str, dest: Path, attempts: list[tuple[str, str]]):
        super().__init__(message)
        self.dest = dest
        self.attempts = attempts


class _MirrorError(Exception):
    """One URL failed; the message is the short reason shown to the user."""


def mnist_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the directory that holds (or will hold) the MNIST files.

    In order: ``root`` itself if given; else ``$CNNX_DATA_DIR/mnist``; else
    ``$XDG_CACHE_HOME/cnnx/mnist`` (an absolute ``XDG_CACHE_HOME`` only, as the XDG spec
    says); else ``~/.cache/cnnx/mnist``. Empty variables count as unset.

    Args:
        root: the directory holding the four MNIST files, overriding the environment.

    Returns:
        An absolute path; it need not exist.
    """
    return _resolve_dir(root)[0]


def mnist_mirrors(mirrors: Sequence[str] | None = None) -> list[str]:
    """Return the mirror base URLs to try, in order, each ending with ``/``.

    Args:
        mirrors: base URLs overriding everything else. When None, the comma-separated
            ``$CNNX_MNIST_MIRRORS`` is used if set and non-empty, else ``DEFAULT_MIRRORS``.

    Raises:
        TypeError: ``mirrors`` is a single string instead of a sequence of strings.
    """
    if mirrors is None:
        env = os.environ.get(MIRRORS_ENV, "").strip()
        bases = [m.strip() for m in env.split(",")] if env else list(DEFAULT_MIRRORS)
    else:
        if isinstance(mirrors, (str, bytes)):
            raise TypeError(
                "mirrors must be a list of base URLs, not a single string; "
                f"got {mirrors!r} (wrap it in a list)"
            )
        bases = [str(m).strip() for m in mirrors]
    return [b if b.endswith("/") else b + "/" for b in bases if b]


def download_verified(
    urls: Sequence[str],
    dest: str | os.PathLike[str],
    sha256: str,
    *,
    progress: bool | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
    max_bytes: int = DOWNLOAD_MAX_BYTES,
) -> Path:
    """Download the first of ``urls`` whose content has SHA-256 ``sha256`` to ``dest``.

    Each URL is streamed into a temporary file next to ``dest`` while hashing. The
    temporary file is renamed to ``dest`` only when the byte count matches the server's
    Content-Length and the hash matches; otherwise it is removed and the next URL tried.
    An interruption (an exception, Ctrl-C) removes the temporary file too, so ``dest``
    is only ever a complete, verified file. An existing ``dest`` is replaced only by a
    verified download.

    Args:
        urls: full URLs to try in order (``http``, ``https`` or ``file``).
        dest: final file name; its directory must exist.
        sha256: expected SHA-256 of the content, 64 hex digits.
        progress: show a progress bar: ``None`` on a terminal only, ``True`` always,
            ``False`` never.
        timeout: seconds to wait for a connection or for each read.
        max_bytes: give up on a URL that sends more than this.

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: every URL failed; ``attempts`` lists each URL with its reason.
        DatasetError: ``dest`` could not be written (a local problem, not a mirror's).
        ValueError: ``sha256`` is not 64 hex digits.
    """
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise ValueError(f"download_verified: sha256 must be 64 hex digits, got {sha256!r}")
    dest = Path(dest)
    attempts: list[tuple[str, str]] = []
    for url in urls:
        try:
            _fetch(
                url, dest, sha256.lower(), progress=progress, timeout=timeout, max_bytes=max_bytes
            )
        except _MirrorError as e:
            attempts.append((url, str(e)))
            continue
        except OSError as e:
            raise DatasetError(f"cannot write {dest}: {e.strerror or e}") from e
        return dest
    if not attempts:
        raise DownloadError(f"could not download {dest.name}: no URLs to try", dest, attempts)
    tried = "; ".join(f"{url}: {reason}" for url, reason in attempts)
    raise DownloadError(f"could not download {dest.name}: {tried}", dest, attempts)


def load_mnist(
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    mirrors: Sequence[str] | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the MNIST training or test set, downloading missing files if allowed.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        root: directory holding the files; default from :func:`mnist_dir`.
        download: fetch missing files from the mirrors (verified by SHA-256).
        mirrors: base URLs overriding ``$CNNX_MNIST_MIRRORS`` and ``DEFAULT_MIRRORS``.
        progress: download progress bar: ``None`` on a terminal only, ``True`` always,
            ``False`` never.

    Returns:
        ``(X, y)``: ``X`` is ``(N, 1, 28, 28) float32`` in [0, 1] (pixel / 255) and ``y``
        is ``(N,) int64`` in 0..9.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        DatasetError: files are missing and could not be downloaded, or a file is
            malformed (the message names it). The missing-files message is one line:
            the files, the directory, why nothing was fetched and how to fix it; its
            ``__cause__`` is the :class:`DownloadError` whose ``attempts`` list every
            mirror URL with its error. A failed attempt creates no directory.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    directory, source = _resolve_dir(root)
    names = MNIST_FILES[split]
    found = {name: _find(directory, name) for name in names}
    missing = [name for name in names if found[name] is None]
    if missing and not download:
        raise DatasetError(_not_found_message(split, directory, source, missing, None))
    if missing:
        bases = mnist_mirrors(mirrors)
        created = _make_directory(directory, source)
        try:
            for name in missing:
                gz_name = name + ".gz"
                urls = [base + gz_name for base in bases]
                found[name] = download_verified(
                    urls, directory / gz_name, MNIST_SHA256[gz_name], progress=progress
                )
        except DownloadError as e:
            _remove_if_empty(created)
            raise DatasetError(_not_found_message(split, directory, source, missing, e)) from e
        except BaseException:
            _remove_if_empty(created)
            raise

    images_path, labels_path = (found[name] for name in names)
    images = _read_images(images_path)
    labels = _read_labels(labels_path)
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
            "labels; expected the same count (are both files from the same split?)"
        )
    X = images.reshape(len(images), 1, IMAGE_SIZE, IMAGE_SIZE).astype(np.float32)
    X /= np.float32(255)
    y = labels.astype(np.int64)
    return X, y


def _resolve_dir(root: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """Return the MNIST directory and a few words on where the choice came from."""
    if root is not None:
        return Path(root).expanduser().absolute(), "the root argument"
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        return Path(data_dir).expanduser().absolute() / "mnist", f"${DATA_DIR_ENV}/mnist"
    cache = os.environ.get("XDG_CACHE_HOME")
    if cache and os.path.isabs(cache):
        return Path(cache) / "cnnx" / "mnist", "$XDG_CACHE_HOME/cnnx/mnist"
    return Path.home() / ".cache" / "cnnx" / "mnist", "the default cache directory"


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _magic_text(array: np.ndarray) -> str:
    code = _IDX_CODES[array.dtype]
    return f"{(code << 8) | array.ndim} ({array.dtype}, {array.ndim}-D)"


def _read_images(path: Path) -> np.ndarray:
    """Read and check an image file: ``(N, 28, 28) uint8``."""
    images = read_idx(path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DatasetError(
            f"{path}: not an MNIST image file: IDX magic {_magic_text(images)}; expected "
            f"{_IMAGES_MAGIC} (uint8, 3-D: count×28×28)"
        )
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetError(
            f"{path}: MNIST images must be 28×28 pixels, this file has "
            f"{images.shape[1]}×{images.shape[2]}"
        )
    return images


def _read_labels(path: Path) -> np.ndarray:
    """Read and check a label file: ``(N,) uint8`` with values 0..9."""
    labels = read_idx(path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(
            f"{path}: not an MNIST label file: IDX magic {_magic_text(labels)}; expected "
            f"{_LABELS_MAGIC} (uint8, 1-D)"
        )
    out_of_range = np.flatnonzero(labels >= _NUM_CLASSES)
    if out_of_range.size:
        i = int(out_of_range[0])
        raise DatasetError(
            f"{path}: label {int(labels[i])} at index {i} ({out_of_range.size} labels out of "
            "range in all); MNIST labels are 0 to 9"
        )
    return labels


def _fetch(
    url: str, dest: Path, sha256: str, *, progress: bool | None, timeout: float, max_bytes: int
) -> None:
    """Stream ``url`` into ``dest`` if its SHA-256 matches; raise _MirrorError if not."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (OSError, http.client.HTTPException, ValueError) as e:
        if isinstance(e, urllib.error.HTTPError):
            e.close()  # it holds the error page's open response
        raise _MirrorError(_describe(e)) from e
    with response:
        length = _content_length(response)
        if length is not None and length > max_bytes:
            raise _MirrorError(f"server announces {length} bytes, over the {max_bytes} limit")
        digest = hashlib.sha256()
        received = 0
        bar = Progress(length, desc=dest.name, unit="B", unit_scale=True, enabled=progress)
        with bar, atomic_write(dest, "wb") as f:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise _MirrorError(
                        f"connection broke after {received} bytes: {_describe(e)}"
                    ) from e
                if not chunk:
                    break
                received += len(chunk)
                if received > max_bytes:
                    raise _MirrorError(f"server sent more than the {max_bytes}-byte limit")
                digest.update(chunk)
                f.write(chunk)
                bar.update(len(chunk))
            if length is not None and received != length:
                raise _MirrorError(f"connection closed after {received} of {length} bytes")
            actual = digest.hexdigest()
            if actual != sha256:
                raise _MirrorError(
                    f"SHA-256 mismatch ({received} bytes): got {actual}, expected {sha256}"
                )


def _content_length(response: object) -> int | None:
    value = getattr(response, "headers", {}).get("Content-Length")
    try:
        length = int(value)
    except (TypeError, ValueError):
        return None
    return length if length >= 0 else None


def _describe(e: BaseException) -> str:
    """A short, one-line reason for a failed request."""
    if isinstance(e, urllib.error.HTTPError):
        text = f"HTTP {e.code} {e.reason}"
    elif isinstance(e, urllib.error.URLError):
        reason = e.reason
        if isinstance(reason, OSError) and reason.strerror:
            text = reason.strerror
        else:
            text = str(reason)
    elif isinstance(e, TimeoutError):
        text = "timed out"
    else:
        text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    text = " ".join(text.split())
    if len(text) > _MAX_REASON_CHARS:
        text = text[: _MAX_REASON_CHARS - 3] + "..."
    return text


def _make_directory(directory: Path, source: str) -> list[Path]:
    """Create ``directory`` and missing parents; return those created, deepest first."""
    created = []
    for path in (directory, *directory.parents):
        if path.exists():
            break
        created.append(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _remove_if_empty(created)
        raise DatasetError(
            f"cannot create the MNIST directory {directory} ({source}): {e.strerror or e}"
        ) from e
    return created


def _remove_if_empty(created: list[Path]) -> None:
    """Undo :func:`_make_directory` after a failed download: a failure creates nothing."""
    for path in created:  # deepest first
        try:
            path.rmdir()
        except OSError:  # not empty (a verified file was kept), or gone already
            return


def _failure_reason(error: DownloadError) -> str:
    """A few words on why the download failed: the first mirror's host and reason."""
    if not error.attempts:
        return f"no download mirrors configured (${MIRRORS_ENV} or mirrors=[] is empty)"
    url, reason = error.attempts[0]
    host = urllib.parse.urlsplit(url).netloc or url
    if len(reason) > _SHORT_REASON_CHARS:
        reason = reason[: _SHORT_REASON_CHARS - 3] + "..."
    if len(error.attempts) == 1:
        return f"{host}: {reason}"
    return f"{len(error.attempts)} mirrors failed, first {host}: {reason}"


def _not_found_message(
    split: str, directory: Path, source: str, missing: list[str], error: DownloadError | None
) -> str:
    """One line: what is missing, where cnnx looked, why it was not fetched, one fix."""
    files = ", ".join(f"{name}.gz" for name in missing)
    why = "download=False" if error is None else f"download failed ({_failure_reason(error)})"
    return (
        f"MNIST {split} files not found in {directory} ({source}): {files}; {why}. "
        "Put them there by hand; see docs/datasets-mnist.md"
    )
