"""NumPy files: an ``.npz`` archive with ``X`` and ``y``, or a pair of ``.npy`` files.

Arrays are read with ``allow_pickle=False``: a file holding Python objects is refused,
never unpickled (unpickling runs code from the file).

``X`` may be ``(N, H, W)`` (one channel), ``(N, C, H, W)``, ``(N, H, W, C)`` with
``channels_last=True``, or ``(N, P)`` flat rows of ``P = H·W`` pixels (a square, or the
given ``image_size``). ``y`` is ``(N,)``: integers, integral floats or class names.
An ``.npz`` may instead hold ``X_train``/``y_train`` and optionally ``X_test``/``y_test``
(any case, e.g. Keras's ``x_train``), the latter a given test split.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnx.datasets.own import (
    OwnDataset,
    convert_channels,
    labels_to_indices,
    scale_pixels,
    skipped_note,
    square_side,
)
from cnnx.errors import DatasetError

__all__ = ["load_npy", "load_npz"]

# Partner names tried for the labels of X.npy: (images stem part, labels stem part).
_PAIRS = (("X", "y"), ("x", "y"), ("images", "labels"), ("data", "labels"), ("inputs", "targets"))


def load_npz(
    path: Path,
    *,
    channels: int | None = None,
    image_size: tuple[int, int] | None = None,
    channels_last: bool = False,
    skip_bad: bool = False,
    require_labels: bool = True,
    class_names: Sequence[str] | None = None,
) -> OwnDataset:
    """Read an ``.npz`` archive (see the module docstring); arguments as in
    :func:`cnnx.datasets.load_data_file`."""
    source = str(path)
    arrays = _read_npz(path)
    keys = {k.lower(): k for k in arrays}
    if "x" in keys:
        x_key, y_key, test_keys = keys["x"], keys.get("y"), None
    elif "x_train" in keys:
        x_key, y_key = keys["x_train"], keys.get("y_train")
        test_keys = (keys["x_test"], keys.get("y_test")) if "x_test" in keys else None
    else:
        names = ", ".join(sorted(arrays)) or "none"
        raise DatasetError(
            f"{source}: holds the arrays {names}; expected X and y (or X_train, y_train and "
            "optionally X_test, y_test)"
        )
    options = {"channels_last": channels_last, "image_size": image_size}
    data = _assemble(
        source, arrays[x_key], None if y_key is None else arrays[y_key], x_key, y_key,
        channels=channels, skip_bad=skip_bad, require_labels=require_labels,
        class_names=class_names, **options,
    )  # fmt: skip
    data.format = "npz"
    if test_keys is not None:
        x_test, y_test = test_keys
        test = _assemble(
            source, arrays[x_test], None if y_test is None else arrays[y_test], x_test, y_test,
            channels=data.X.shape[1], skip_bad=skip_bad, require_labels=False,
            class_names=data.class_names if data.y is not None else class_names, **options,
        )  # fmt: skip
        if test.image_shape[1:] != data.image_shape[1:]:
            raise DatasetError(
                f"{source}: {x_test} images are {test.image_shape[1]}×{test.image_shape[2]} but "
                f"{x_key} images are {data.image_shape[1]}×{data.image_shape[2]}"
            )
        data.test = (test.X, test.y)
        data.notes += test.notes
        data.skipped += test.skipped
    return data


def load_npy(
    path: Path,
    *,
    labels: str | Path | None = None,
    channels: int | None = None,
    image_size: tuple[int, int] | None = None,
    channels_last: bool = False,
    skip_bad: bool = False,
    require_labels: bool = True,
    class_names: Sequence[str] | None = None,
) -> OwnDataset:
    """Read images from one ``.npy`` file and labels from its partner (``X.npy`` and
    ``y.npy``, ``train_images.npy`` and ``train_labels.npy``, ...) or from ``labels``."""
    source = str(path)
    X = _read_npy(path)
    label_path = Path(labels) if labels is not None else _partner(path)
    if labels is not None and not label_path.is_file():
        raise DatasetError(f"{label_path}: no such labels file")
    y = _read_npy(label_path) if label_path is not None else None
    if y is None and require_labels:
        tried = ", ".join(p.name for p in _partner_candidates(path)) or "none"
        raise DatasetError(
            f"{source}: no labels file beside it (looked for {tried}); give the labels file "
            "(labels=... / --labels) or save X and y together in one .npz"
        )
    data = _assemble(
        source, X, y, path.name, None if label_path is None else label_path.name,
        channels=channels, image_size=image_size, channels_last=channels_last,
        skip_bad=skip_bad, require_labels=require_labels, class_names=class_names,
    )  # fmt: skip
    data.format = "npy"
    if label_path is not None:
        data.notes.insert(0, f"labels from {label_path}")
    return data


# ---------------------------------------------------------------------------- reading


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    source = str(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{source}: not a readable .npz archive ({_reason(exc)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(f"{source}: holds a single array (.npy format), not an .npz archive")
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise DatasetError(
                        f"{source}: array {key!r} holds Python objects; cnnx never unpickles "
                        "files (that could run code); save plain numeric or string arrays"
                    ) from None
                raise DatasetError(f"{source}: array {key!r} is unreadable ({exc})") from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise DatasetError(
                    f"{source}: array {key!r} is unreadable ({_reason(exc)})"
                ) from None
    return arrays


def _read_npy(path: Path) -> np.ndarray:
    source = str(path)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DatasetError(
                f"{source}: holds Python objects; cnnx never unpickles files (that could run "
                "code); save a plain numeric or string array"
            ) from None
        raise DatasetError(f"{source}: not a readable .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{source}: not a readable .npy array ({_reason(exc)})") from None
    if not isinstance(array, np.ndarray):
        raise DatasetError(f"{source}: an .npz archive, not a single .npy array")
    return array


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _partner_candidates(path: Path) -> list[Path]:
    """Label files that would pair with ``path``: the images part of its name replaced."""
    stem, out = path.stem, []
    for images, labels in _PAIRS:
        pattern = rf"(?<![A-Za-z]){images}(?![A-Za-z])"
        if re.search(pattern, stem):
            candidate = path.with_name(re.sub(pattern, labels, stem) + path.suffix)
            if candidate != path and candidate not in out:
                out.append(candidate)
    return out


def _partner(path: Path) -> Path | None:
    for candidate in _partner_candidates(path):
        if candidate.is_file():
            return candidate
    return None


# ------------------------------------------------------------------------- assembling


def _assemble(
    source: str,
    X: np.ndarray,
    y: np.ndarray | None,
    x_name: str,
    y_name: str | None,
    *,
    channels: int | None,
    image_size: tuple[int, int] | None,
    channels_last: bool,
    skip_bad: bool,
    require_labels: bool,
    class_names: Sequence[str] | None,
) -> OwnDataset:
    images = _as_nchw(source, X, x_name, image_size, channels_last)
    if images.shape[0] == 0:
        raise DatasetError(f"{source}: {x_name} holds no samples (empty dataset)")
    if y is None and require_labels:
        raise DatasetError(f"{source}: {x_name} has no labels array beside it")
    if y is not None:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or len(y) != len(images):
            raise DatasetError(
                f"{source}: {y_name} has shape {y.shape}; expected ({len(images)},), one label "
                f"per sample of {x_name}"
            )
    notes: list[str] = []
    skipped: list[str] = []
    if skip_bad and images.dtype.kind in "iuf":
        bad = _bad_samples(images)
        if bad.any():
            reasons = [
                (f"{x_name}[{i}]", "non-finite or out-of-range pixels") for i in np.flatnonzero(bad)
            ]
            skipped = [name for name, _ in reasons]
            notes.append(skipped_note("samples", reasons))
            images = images[~bad]
            y = None if y is None else y[~bad]
            if len(images) == 0:
                raise DatasetError(f"{source}: every sample of {x_name} is bad (empty dataset)")
    X32, scaling = scale_pixels(
        images, lambda i: f"{x_name}[{', '.join(map(str, i))}]", source=source
    )
    X32 = convert_channels(X32, channels, source=source)
    labels, names = (None, list(class_names or []))
    if y is not None:
        labels, names = labels_to_indices(
            y, lambda i: f"{y_name}[{i}]", source=source, class_names=class_names
        )
    c, h, w = X32.shape[1:]
    options = {"channels": int(c), "image_size": [int(h), int(w)], "channels_last": channels_last}
    return OwnDataset(
        np.ascontiguousarray(X32), labels, names, source, "npz", notes=notes, skipped=skipped,
        scaling=scaling, options=options,
    )  # fmt: skip


def _as_nchw(
    source: str,
    X: np.ndarray,
    name: str,
    image_size: tuple[int, int] | None,
    channels_last: bool,
) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise DatasetError(f"{source}: {name} holds {X.dtype} values; expected numbers (pixels)")
    if X.ndim == 2:
        n, count = X.shape
        if image_size is not None:
            h, w = image_size
            if count % (h * w):
                raise DatasetError(
                    f"{source}: {name} rows have {count} pixels, not a multiple of {h}×{w}"
                )
            c = count // (h * w)
        else:
            side = square_side(count)
            if side is None:
                raise DatasetError(
                    f"{source}: {name} rows have {count} pixels, not a square number; give "
                    "the image size (image_size=/--image-size HxW)"
                )
            c, h, w = 1, side, side
        X = X.reshape(n, h, w, c).transpose(0, 3, 1, 2) if channels_last else X.reshape(n, c, h, w)
        return X
    if X.ndim == 3:
        X = X[:, None]
    elif X.ndim == 4:
        if channels_last:
            X = X.transpose(0, 3, 1, 2)
        elif X.shape[1] not in (1, 3, 4) and X.shape[3] in (1, 3, 4):
            raise DatasetError(
                f"{source}: {name} has shape {X.shape}, which looks like (N, H, W, C); pass "
                "channels_last=True (--channels-last), or store it as (N, C, H, W)"
            )
    else:
        raise DatasetError(
            f"{source}: {name} has shape {X.shape}; expected (N, H, W), (N, C, H, W), "
            "(N, H, W, C) with channels_last, or (N, pixels)"
        )
    if image_size is not None and tuple(X.shape[2:]) != tuple(image_size):
        raise DatasetError(
            f"{source}: {name} images are {X.shape[2]}×{X.shape[3]}, not the "
            f"{image_size[0]}×{image_size[1]} asked for (arrays are not resized)"
        )
    return X


def _bad_samples(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1)
    if images.dtype.kind == "f":
        return ~np.isfinite(flat).all(axis=1)
    if images.dtype.kind in "iu":
        return ((flat < 0) | (flat > 255)).any(axis=1)
    return np.zeros(len(images), dtype=bool)
