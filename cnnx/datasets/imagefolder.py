"""Image folders: ``root/<class name>/<image files>``, the torchvision ImageFolder convention.

* Classes are the sub-folders of ``root``, sorted by name; images may sit in nested
  folders below a class folder. With ``root/train/<class>/...`` and
  ``root/test/<class>/...`` (or ``root/val/...``) the two parts are given splits
  (with both ``val`` and ``test``, ``val`` is the validation split and ``test`` is not
  read, left for a final check); ``root/train/<class>/...`` alone is read as ``root``.
* PNG, JPEG, BMP and GIF (first frame) files are read with Pillow (the ``images`` extra);
  other files are ignored and counted in a note; hidden files (``.DS_Store``) are not.
  A JPEG's EXIF orientation is applied, as a photo viewer would.
* Channels: 1 if every image is stored greyscale, else 3 (RGB; an alpha channel is
  dropped), unless ``channels`` says otherwise.
* Size: every image is resized (bilinear, antialiased) to ``image_size`` if given.
  Without it, the most common size is used, and images of another size are resized
  to it only when their aspect ratio is the same (a pure rescale, noted); an image of
  another shape is an error, since stretching it would distort it silently.
* 8-bit images are divided by 255, 16-bit ones by 65535.

Large folders are decoded once into a cache (:func:`cache_path`), reused while the list
of files, their sizes and modification times, and the options are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnx.datasets.own import OwnDataset, name_list, skipped_note
from cnnx.errors import DatasetError
from cnnx.utils.atomic import atomic_write
from cnnx.utils.progress import Progress

__all__ = ["CACHE_MIN_IMAGES", "IMAGE_EXTENSIONS", "cache_path", "load_image_folder", "read_images"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

#: Folders with at least this many images are cached by default.
CACHE_MIN_IMAGES = 1000

_SPLIT_NAMES = ("train", "test", "val")
_CACHE_VERSION = "cnnx image-folder cache 1"
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_ASPECT_TOLERANCE = 0.01


def _pillow():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise DatasetError(
            'reading image folders needs Pillow: pip install "cnnx[images]"'
        ) from None
    return Image, ImageOps


@dataclass
class _File:
    path: Path
    name: str  # relative to root, for messages and the cache key
    split: int  # 0 train (or no split), 1 the given test split
    label: int  # class index, -1 without classes
    size: tuple[int, int] = (0, 0)  # (H, W) after EXIF orientation
    grey: bool = True
    wide: bool = False  # 16-bit
    rotated: bool = False  # EXIF orientation swaps width and height
    problem: str | None = None


def load_image_folder(
    root: Path,
    *,
    channels: int | None = None,
    image_size: tuple[int, int] | None = None,
    skip_bad: bool = False,
    require_labels: bool = True,
    class_names: Sequence[str] | None = None,
    cache: bool | None = None,
    progress: bool | None = None,
) -> OwnDataset:
    """Read an image folder (see the module docstring); arguments as in
    :func:`cnnx.datasets.load_data_file`."""
    source = str(root)
    if not root.exists():
        raise DatasetError(f"{source}: no such folder")
    if not root.is_dir():
        raise DatasetError(f"{source}: not a folder")
    files, names, test_name, notes = _scan(root, require_labels, class_names)
    options = {"channels": channels, "image_size": image_size, "skip_bad": skip_bad}
    use_cache = len(files) >= CACHE_MIN_IMAGES if cache is None else bool(cache)
    key = _cache_key(files, names, options) if use_cache else ""
    if use_cache:
        cached = _read_cache(root, key)
        if cached is not None:
            cached.notes.append(f"read from the cache {cache_path(root)}")
            return cached

    Image, _ = _pillow()
    expected = {f.label for f in files if f.split == 0 and f.label >= 0}
    bad: list[_File] = []
    good = []
    # Two passes: sizes and modes from the headers first (cheap), to choose the
    # channels and size; then each image is decoded straight into its final size.
    with Progress(len(files), desc=f"checking {root.name or source}", unit="images",
                  enabled=progress) as bar:  # fmt: skip
        for f in files:
            f.problem = _read_header(Image, f)
            bar.update(1)
            if f.problem is None:
                good.append(f)
            elif skip_bad:
                bad.append(f)
            else:
                raise DatasetError(f"{f.path}: {f.problem}")
    files = good
    _check_classes(root, files, names, bad, expected)

    n_channels = channels or (1 if all(f.grey for f in files) else 3)
    if image_size is None:
        size, mismatched = _common_size(files)
        for f in mismatched:
            f.problem = (
                f"is {f.size[0]}×{f.size[1]} (height×width), a different shape from the "
                f"{size[0]}×{size[1]} of most images; give an image size (image_size=/"
                "--image-size HxW) to resize every image to it"
            )
            if not skip_bad:
                raise DatasetError(f"{f.path}: {f.problem}")
            bad.append(f)
        files = [f for f in files if f not in mismatched]
        _check_classes(root, files, names, bad, expected)
    else:
        size = image_size
    wide = any(f.wide for f in files)

    raw = np.empty((len(files), n_channels, *size), dtype=np.float32 if wide else np.uint8)
    keep = np.ones(len(files), dtype=bool)
    bar = Progress(len(files), desc=f"reading {root.name or source}", unit="images",
                   enabled=progress)  # fmt: skip
    with bar:
        for i, f in enumerate(files):
            f.problem = _decode(Image, f, n_channels, size, wide, raw[i])
            bar.update(1)
            if f.problem is None:
                continue
            if not skip_bad:
                raise DatasetError(f"{f.path}: {f.problem}")
            bad.append(f)
            keep[i] = False
    if not keep.all():
        raw = raw[keep]
        files = [f for f, k in zip(files, keep, strict=True) if k]
        _check_classes(root, files, names, bad, expected)
    if not files:
        raise DatasetError(f"{source}: no readable images (empty dataset)")

    resized = sum(f.size != size for f in files)
    if resized:
        notes.append(f"{resized} of {len(files)} images resized to {size[0]}×{size[1]}")
    if bad:
        notes.insert(0, skipped_note("files", [(f.name, f.problem or "") for f in bad]))
    labels = np.asarray([f.label for f in files], dtype=np.int64)
    split = np.asarray([f.split for f in files], dtype=np.int8)
    meta = {
        "class_names": list(names),
        "labelled": bool(names) and all(f.label >= 0 for f in files),
        "test_name": test_name,
        "notes": notes,
        "skipped": [f.name for f in bad],
        "sample_names": [f.name for f in files if f.split == 0]
        + [f.name for f in files if f.split == 1],
        "options": {"channels": n_channels, "image_size": [int(size[0]), int(size[1])]},
    }
    data = _dataset(source, raw, labels, split, meta)
    if use_cache:
        data.notes.append(_write_cache(root, key, raw, labels, split, meta))
    return data


def _dataset(
    source: str, raw: np.ndarray, labels: np.ndarray, split: np.ndarray, meta: dict[str, Any]
) -> OwnDataset:
    """Scale decoded pixels and assemble the result (also from the cache)."""
    wide = raw.dtype != np.uint8
    X = (raw.astype(np.float32) / np.float32(65535 if wide else 255)).astype(np.float32)
    train = split == 0
    data = OwnDataset(
        X[train], labels[train] if meta["labelled"] else None, list(meta["class_names"]),
        source, "folder", notes=list(meta["notes"]), skipped=list(meta["skipped"]),
        scaling="16-bit images divided by 65535" if wide else "8-bit images divided by 255",
        options=dict(meta["options"]), sample_names=list(meta["sample_names"]),
    )  # fmt: skip
    if meta["test_name"] is not None:
        data.test = (X[~train], labels[~train])
        data.test_name = meta["test_name"]
    if len(data.X) == 0:
        raise DatasetError(f"{source}: no images (empty dataset)")
    return data


def read_images(
    paths: Sequence[str | os.PathLike[str]],
    *,
    channels: int = 1,
    image_size: int | Sequence[int] | str,
) -> np.ndarray:
    """Read image files into one batch, as a trained model's data was read.

    Args:
        paths: image files (PNG, JPEG, BMP, GIF).
        channels: 1 or 3.
        image_size: ``H``, ``(H, W)`` or ``"HxW"``; every image is resized to it.

    Returns:
        ``(N, channels, H, W) float32`` in [0, 1].

    Raises:
        DatasetError: a file is missing or not a readable image (the message names it).
    """
    from cnnx.datasets.own import parse_image_size

    size = parse_image_size(image_size)
    assert size is not None
    Image, _ = _pillow()
    files = [_File(Path(p), str(p), 0, -1) for p in paths]
    for f in files:
        if not f.path.is_file():
            raise DatasetError(f"{f.path}: no such file")
        problem = _read_header(Image, f)
        if problem is not None:
            raise DatasetError(f"{f.path}: {problem}")
    wide = any(f.wide for f in files)
    X = np.empty((len(files), channels, *size), dtype=np.float32 if wide else np.uint8)
    for i, f in enumerate(files):
        problem = _decode(Image, f, channels, size, wide, X[i])
        if problem is not None:
            raise DatasetError(f"{f.path}: {problem}")
    return (X.astype(np.float32) / np.float32(65535 if wide else 255)).astype(np.float32)


# --------------------------------------------------------------------------- scanning


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _walk(folder: Path) -> tuple[list[Path], list[Path]]:
    """Image files and other files below ``folder``, in sorted order, hidden ones skipped."""
    images, others = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            (images if _is_image(path) else others).append(path)
    return images, others


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))


def _scan(
    root: Path, require_labels: bool, class_names: Sequence[str] | None
) -> tuple[list[_File], list[str], str | None, list[str]]:
    """The image files to read, the class names, the given split's name, and notes."""
    notes: list[str] = []
    folders = _subfolders(root)
    lower = {p.name.lower(): p for p in folders}
    # root/train/<class>/... (with test/ or val/ beside it, or alone) is the split
    # layout; a lone "train" folder of images is a class named train.
    split_layout = (
        "train" in lower and set(lower) <= set(_SPLIT_NAMES) and bool(_subfolders(lower["train"]))
    )
    if split_layout:
        train_dir = lower["train"]
        parts = [(0, train_dir)]
        test_name = None
        for name in ("val", "test"):
            if name in lower and not _subfolders(lower[name]):
                notes.append(
                    f"{lower[name].name}/ is not read: it has no class folders (unlabelled "
                    f"images can be predicted on: cnnx predict CHECKPOINT {lower[name]})"
                )
                del lower[name]
        held = lower.get("val") or lower.get("test")
        if held is not None:
            test_name = held.name.lower()
            parts.append((1, held))
        if "val" in lower and "test" in lower:
            notes.append(
                f"{lower['test'].name}/ is not read: {lower['val'].name}/ is the validation "
                f"split; evaluate on it afterwards with cnnx evaluate --data "
                f"{lower['test']}"
            )
    else:
        test_name = None
        parts = [(0, root)]

    files: list[_File] = []
    ignored: list[Path] = []
    names = list(class_names) if class_names is not None else None
    for split, top in parts:
        classes = _subfolders(top)
        loose = sorted(p for p in top.iterdir() if p.is_file() and _visible(p))
        if not classes:
            images = [p for p in loose if _is_image(p)]
            if images and not require_labels and split == 0 and test_name is None:
                files += [_File(p, str(p.relative_to(root)), 0, -1) for p in images]
                ignored += [p for p in loose if not _is_image(p)]
                return files, list(names or []), None, _ignored_note(root, ignored, notes)
            what = f"{len(images)} images but no class folders" if images else "no class folders"
            raise DatasetError(
                f"{top}: {what} (empty dataset); expected {top.name or top}/<class name>/"
                "<image files>, one folder per class"
            )
        if loose:
            ignored += loose
        if names is None:
            names = [c.name for c in classes]
        index = {name: k for k, name in enumerate(names)}
        for folder in classes:
            images, others = _walk(folder)
            ignored += others
            k = index.get(folder.name)
            if k is None:
                known = name_list(names, 8)
                where = "the training classes" if split else "the model's classes"
                raise DatasetError(
                    f"{folder}: class {folder.name!r} is not among {where} ({known})"
                )
            if not images:
                extra = (
                    f" (it holds {len(others)} other files, e.g. {others[0].name})"
                    if others
                    else ""
                )
                raise DatasetError(
                    f"{folder}: no images in this class folder{extra}; expected "
                    f"{', '.join(e.lstrip('.').upper() for e in IMAGE_EXTENSIONS[:4])} or GIF files"
                )
            files += [_File(p, str(p.relative_to(root)), split, k) for p in images]
    return files, list(names or []), test_name, _ignored_note(root, ignored, notes)


def _ignored_note(root: Path, ignored: list[Path], notes: list[str]) -> list[str]:
    if ignored:
        shown = [str(p.relative_to(root)) for p in ignored]
        notes.append(f"ignored {len(ignored)} files that are not images: {name_list(shown)}")
    return notes


def _check_classes(
    root: Path, files: list[_File], names: list[str], bad: list[_File], expected: set[int]
) -> None:
    """Every class folder of the training part must keep at least one usable image."""
    present = {f.label for f in files if f.split == 0}
    for k in sorted(expected - present):
        name = names[k]
        lost = [f for f in bad if f.label == k and f.split == 0]
        folder = lost[0].path.parent if lost else root / name
        detail = f"; first: {lost[0].name}: {lost[0].problem}" if lost else ""
        raise DatasetError(
            f"{folder}: none of the images of class {name!r} could be used "
            f"({len(lost)} skipped{detail})"
        )


# --------------------------------------------------------------------------- decoding


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_header(Image, f: _File) -> str | None:
    """Fill in size, greyness and bit depth from the file's header; a problem or None."""
    try:
        with Image.open(f.path) as im:
            w, h = im.size
            try:
                orientation = im.getexif().get(0x0112)
            except Exception:  # a damaged EXIF block: keep the stored orientation
                orientation = None
            mode = im.mode
            grey = mode in _GREY_MODES
            if mode in ("P", "PA"):
                palette = im.getpalette() or []
                triples = [palette[i : i + 3] for i in range(0, len(palette) - 2, 3)]
                grey = all(r == g == b for r, g, b in triples)
    except Exception as exc:  # Pillow raises many kinds for damaged files
        return f"cannot be read as an image ({_describe(exc)})"
    if w < 1 or h < 1:
        return "has no pixels"
    f.rotated = orientation in _ROTATED
    f.size = (w, h) if f.rotated else (h, w)
    f.grey = grey
    f.wide = mode in _WIDE_MODES
    return None


def _decode(
    Image, f: _File, channels: int, size: tuple[int, int], wide: bool, out: np.ndarray
) -> str | None:
    """Decode ``f`` into ``out`` ``(channels, H, W)``; a problem or None."""
    _, ImageOps = _pillow()
    h, w = size
    try:
        with Image.open(f.path) as im:
            if im.format == "JPEG" and f.size != size:
                # Let the JPEG decoder scale down by 1/2, 1/4 or 1/8 first: a 12-megapixel
                # photo decodes in a fraction of the time and memory.
                im.draft("L" if channels == 1 else "RGB", (h, w) if f.rotated else (w, h))
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in _WIDE_MODES:
                pixels = np.asarray(im, dtype=np.float32)
                im = Image.fromarray(pixels)
                target = "F"
            elif channels == 1:
                target = "L"
            else:
                target = "RGB"
            if im.mode != target:
                im = im.convert(target)
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            array = np.asarray(im)
    except Exception as exc:  # truncated or corrupt data shows only when decoding
        return f"cannot be read as an image ({_describe(exc)})"
    if array.ndim == 2:
        array = array[:, :, None]
    if wide and array.dtype == np.uint8:
        array = array.astype(np.float32) * np.float32(65535 / 255)
    array = array.transpose(2, 0, 1)
    if array.shape[0] == 1 and channels == 3:
        array = np.repeat(array, 3, axis=0)
    out[...] = array
    return None


def _common_size(files: list[_File]) -> tuple[tuple[int, int], list[_File]]:
    """The most common size (ties: the smaller) and the files of a different aspect ratio."""
    counts = Counter(f.size for f in files)
    size = max(counts, key=lambda s: (counts[s], -s[0] * s[1]))
    ratio = size[1] / size[0]
    mismatched = [
        f for f in files
        if f.size != size and abs((f.size[1] / f.size[0]) / ratio - 1) > _ASPECT_TOLERANCE
    ]  # fmt: skip
    return size, mismatched


# ------------------------------------------------------------------------------ cache


def cache_path(root: str | os.PathLike[str]) -> Path:
    """Where the decoded images of folder ``root`` are cached.

    ``$CNNX_DATA_DIR/folders/<name>-<hash of the absolute path>.npz`` when
    ``CNNX_DATA_DIR`` is set, else ``.<name>.cnnx-cache.npz`` beside the folder.
    """
    root = Path(root).absolute()
    data_dir = os.environ.get("CNNX_DATA_DIR")
    if data_dir:
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
        return Path(data_dir).expanduser() / "folders" / f"{root.name}-{digest}.npz"
    return root.parent / f".{root.name}.cnnx-cache.npz"


def _cache_key(files: list[_File], names: list[str], options: dict[str, Any]) -> str:
    entries = []
    for f in files:
        st = f.path.stat()
        entries.append([f.name, f.split, f.label, st.st_size, st.st_mtime_ns])
    payload = {
        "version": _CACHE_VERSION,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        "classes": names,
        "files": entries,
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def _read_cache(root: Path, key: str) -> OwnDataset | None:
    """The cached dataset if the cache exists and its key matches, else None."""
    path = cache_path(root)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            if str(archive["key"]) != key:
                return None
            raw, labels, split = archive["X"], archive["y"], archive["split"]
            meta = json.loads(str(archive["meta"]))
        return _dataset(str(root), raw, labels, split, meta)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None  # a damaged or foreign cache is rebuilt


def _write_cache(
    root: Path, key: str, raw: np.ndarray, labels: np.ndarray, split: np.ndarray, meta: dict
) -> str:
    """Write the cache atomically; a note saying where, or why not."""
    path = cache_path(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as handle:
            np.savez(
                handle, key=np.asarray(key), meta=np.asarray(json.dumps(meta)),
                X=raw, y=labels, split=split,
            )  # fmt: skip
    except OSError as exc:
        return f"could not write the cache {path} ({exc.strerror or exc}); not cached"
    return f"cached the decoded images in {path}"
