"""Your own data: image folders, CSV files and NumPy arrays, loaded into one shape.

:func:`load_data_file` reads any of the supported formats (the format is found from the
path, or given) and returns an :class:`OwnDataset`: images ``X`` ``(N, C, H, W) float32``,
labels ``y`` ``(N,) int64`` (or ``None`` for an unlabelled file), the class names, a
given test split where the format has one, and notes on what loading did.

The rules every format follows:

* **Pixel scaling.** Integer pixels (an integer array, CSV values written without a
  decimal point, 8-bit images) must lie in 0-255 and are divided by 255; 16-bit images
  are divided by 65535; floating-point pixels are kept as they are. Booleans become 0/1.
* **Classes.** From the folder names of an image folder (sorted by name), or from the
  label values: integer labels are sorted by value (labels 1, 2, 3 are classes 0, 1, 2
  named "1", "2", "3"); text labels are class names, sorted by name.
* **Bad input** is a :class:`~cnnx.errors.DatasetError` whose one-line message names the
  file and the row, sample or pixel; with ``skip_bad=True`` bad files (or rows, or
  samples) are left out instead, counted, and the first few named in the notes.
* **Normalisation** (optional) is per channel, with the mean and standard deviation of
  the training split only (:meth:`OwnDataset.split`); the statistics go into the run's
  ``preprocessing`` so that evaluation and prediction apply the same.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnx.errors import DatasetError

__all__ = [
    "FORMATS",
    "UNBALANCED_RATIO",
    "Normalization",
    "OwnDataset",
    "SplitData",
    "apply_preprocessing",
    "detect_format",
    "load_data_file",
    "load_for_model",
    "parse_image_size",
]

#: Formats :func:`load_data_file` reads.
FORMATS = ("folder", "csv", "npz", "npy")

#: A class with this many times fewer samples than the largest one gets a warning.
UNBALANCED_RATIO = 3.0

#: How many skipped names a note lists before "and N more".
SHOWN_NAMES = 5

_CSV_SUFFIXES = (".csv", ".tsv")


# ----------------------------------------------------------------------------- results


@dataclass
class SplitData:
    """Training and validation arrays made by :meth:`OwnDataset.split`.

    Attributes:
        train: ``(X, y)``: X ``(N, C, H, W) float32``, y ``(N,) int64``.
        val: the same for validation, or None.
        val_name: ``"val"`` for a split drawn from the data, ``"test"`` (or the given
            folder's name) for a split the data came with.
        class_names: display name of each class index.
        description: one line naming the data and its size, for progress messages.
        preprocessing: what evaluation and prediction must do to new inputs: the
            loading options (format, channels, image size, ...) and ``"normalize"``,
            ``None`` or ``{"mean": [...], "std": [...]}`` per channel.
        summary: the dataset's summary with the split sizes added.
    """

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray] | None
    val_name: str
    class_names: list[str]
    description: str
    preprocessing: dict[str, Any]
    summary: str


@dataclass
class OwnDataset:
    """Images and labels read from the user's own files.

    Attributes:
        X: ``(N, C, H, W) float32`` images (the training part when the data came with
            splits).
        y: ``(N,) int64`` class indices into ``class_names``, or None (no labels).
        class_names: display name of each class index.
        source: the file or folder read.
        format: one of :data:`FORMATS`.
        test: a split the data came with (``root/test`` of an image folder,
            ``X_test``/``y_test`` of an ``.npz``): ``(X, y)`` with y possibly None.
        test_name: what the given split is called (``"test"`` or ``"val"``).
        notes: what loading did that a user should know (images resized, files
            ignored or skipped, the cache used).
        skipped: names of the files, rows or samples left out by ``skip_bad``.
        scaling: how pixel values were scaled, in words.
        options: the loading options that new inputs must be read with (channels,
            image size, ...); stored in a run's ``preprocessing``.
        sample_names: where each sample came from (an image's path relative to the
            folder, ``"row 7"`` of a CSV), for the samples of ``X`` followed by those
            of ``test``; None for arrays.
    """

    X: np.ndarray
    y: np.ndarray | None
    class_names: list[str]
    source: str
    format: str
    test: tuple[np.ndarray, np.ndarray | None] | None = None
    test_name: str = "test"
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    scaling: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    sample_names: list[str] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """One sample's shape ``(C, H, W)``."""
        return tuple(int(s) for s in self.X.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self, y: np.ndarray | None = None) -> np.ndarray:
        """Samples per class index, ``(num_classes,) int64`` (of ``y``, default ``self.y``)."""
        labels = self.y if y is None else y
        if labels is None:
            return np.zeros(self.num_classes, dtype=np.int64)
        return np.bincount(labels, minlength=self.num_classes).astype(np.int64)

    def warnings(self) -> list[str]:
        """Warnings about the data: badly unbalanced classes."""
        if self.y is None or self.num_classes < 2:
            return []
        counts = self.class_counts()
        if self.test is not None and self.test[1] is not None:
            counts = counts + self.class_counts(self.test[1])
        largest, smallest = int(counts.argmax()), int(counts.argmin())
        if counts[smallest] * UNBALANCED_RATIO > counts[largest]:
            return []
        ratio = counts[largest] / max(int(counts[smallest]), 1)
        return [
            f"classes are unbalanced: {self.class_names[largest]!r} has "
            f"{counts[largest]:,} samples but {self.class_names[smallest]!r} only "
            f"{counts[smallest]:,} ({ratio:.0f}×); accuracy will flatter a model that "
            "favours the large classes, so check the per-class recall (cnnx evaluate) "
            "or collect more of the small ones"
        ]

    def summary(self, split: tuple[int, int, str] | None = None, show_split: bool = True) -> str:
        """A few lines: source, samples per class, image size, channels, values, splits.

        Args:
            split: ``(train samples, validation samples, validation name)`` to report
                instead of the split the data came with.
            show_split: with False, no split line at all (the caller adds its own).
        """
        c, h, w = self.image_shape
        kind = {"folder": "image folder", "csv": "CSV file", "npz": ".npz arrays"}
        n = len(self.X) + (0 if self.test is None else len(self.test[0]))
        lines = [
            f"data      {self.source} ({kind.get(self.format, '.npy arrays')}, "
            f"{n:,} samples, {self.num_classes} classes)",
            f"images    {h}×{w}, {c} channel{'s' if c != 1 else ''}"
            + (" (greyscale)" if c == 1 else " (colour)" if c == 3 else ""),
        ]
        parts = [self.X] + ([self.test[0]] if self.test is not None else [])
        low = min(float(p.min()) for p in parts if p.size)
        high = max(float(p.max()) for p in parts if p.size)
        lines.append(f"values    {low:.3f} to {high:.3f} ({self.scaling})")
        if self.y is None:
            lines.append("classes   none: the file has no labels")
        else:
            counts = self.class_counts()
            if self.test is not None and self.test[1] is not None:
                counts = counts + self.class_counts(self.test[1])
            shown = [
                f"{name} {count:,}" for name, count in zip(self.class_names, counts, strict=True)
            ]
            if len(shown) > 12:
                shown = [*shown[:10], f"… {len(shown) - 10} more (fewest {counts.min():,})"]
            lines.append("classes   " + ", ".join(shown))
        if not show_split:
            pass
        elif split is not None:
            n_train, n_val, name = split
            lines.append(f"split     train {n_train:,}, {name} {n_val:,}")
        elif self.test is not None:
            lines.append(
                f"split     given: train {len(self.X):,}, {self.test_name} {len(self.test[0]):,}"
            )
        lines += [f"note      {note}" for note in self.notes]
        lines += [f"warning   {text}" for text in self.warnings()]
        return "\n".join(lines)

    def split(
        self, val_fraction: float | None = None, seed: int = 0, normalize: bool = False
    ) -> SplitData:
        """Training and validation arrays, normalised on the training split if asked.

        A split the data came with (``root/test``) is the validation data unless
        ``val_fraction`` is given; otherwise a stratified ``val_fraction`` (default
        0.2) of the samples is drawn with ``seed`` (see
        :func:`cnnx.datasets.stratified_split`); 0 means no validation.

        Raises:
            DatasetError: the data has no labels.
        """
        from cnnx.datasets.split import stratified_split

        if self.y is None:
            raise DatasetError(
                f"{self.source}: has no labels, so it cannot be trained or evaluated on "
                "(it can be predicted on)"
            )
        val: tuple[np.ndarray, np.ndarray] | None
        if self.test is not None and val_fraction is None:
            if self.test[1] is None:
                raise DatasetError(f"{self.source}: the given {self.test_name} split has no labels")
            train, val, val_name = (self.X, self.y), (self.test[0], self.test[1]), self.test_name
        else:
            fraction = 0.2 if val_fraction is None else val_fraction
            val_name = "val"
            if fraction == 0:
                train, val = (self.X, self.y), None
            else:
                train_idx, val_idx = stratified_split(self.y, fraction, seed=seed)
                train = (self.X[train_idx], self.y[train_idx])
                val = (self.X[val_idx], self.y[val_idx])
        norm = None
        if normalize:
            norm = Normalization.fit(train[0])
            train = (norm.apply(train[0]), train[1])
            if val is not None:
                val = (norm.apply(val[0]), val[1])
        preprocessing = {
            **self.options,
            "format": self.format,
            "normalize": None if norm is None else norm.to_dict(),
        }
        n_val = 0 if val is None else len(val[1])
        description = f"{self.source} ({len(train[1]) + n_val:,} samples)"
        summary = self.summary((len(train[1]), n_val, val_name))
        if norm is not None:
            summary += "\nnote      " + norm.describe()
        return SplitData(
            train, val, val_name, list(self.class_names), description, preprocessing, summary
        )


@dataclass(frozen=True)
class Normalization:
    """Per-channel standardisation ``(x - mean[c]) / std[c]``.

    Attributes:
        mean: one value per channel.
        std: one value per channel; a channel that is constant in the training data
            gets 1 (it is only shifted).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, X: np.ndarray) -> Normalization:
        """Mean and standard deviation of each channel of ``X`` ``(N, C, H, W)``, in float64."""
        X = np.asarray(X)
        if X.ndim != 4 or X.shape[0] == 0:
            raise ValueError(f"Normalization.fit needs (N, C, H, W) with N >= 1, got {X.shape}")
        mean = X.mean(axis=(0, 2, 3), dtype=np.float64)
        std = X.std(axis=(0, 2, 3), dtype=np.float64)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def apply(self, X: np.ndarray) -> np.ndarray:
        """``(X - mean) / std`` per channel, as a new ``float32`` array."""
        X = np.asarray(X)
        if X.ndim != 4 or X.shape[1] != len(self.mean):
            raise ValueError(
                f"normalisation was computed for {len(self.mean)} channel(s); "
                f"got samples of shape {X.shape[1:]}"
            )
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return ((X.astype(np.float32, copy=False) - mean) / std).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalization:
        try:
            mean = tuple(float(v) for v in data["mean"])
            std = tuple(float(v) for v in data["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"normalisation needs lists 'mean' and 'std', got {data!r}") from exc
        if len(mean) != len(std) or not mean or not all(s > 0 for s in std):
            raise ValueError(f"normalisation needs equally long mean and positive std: {data!r}")
        return cls(mean, std)

    def describe(self) -> str:
        values = ", ".join(f"{m:.3f}/{s:.3f}" for m, s in zip(self.mean, self.std, strict=True))
        return f"normalised per channel with the training split's mean/std: {values}"


def apply_preprocessing(X: np.ndarray, preprocessing: Mapping[str, Any] | None) -> np.ndarray:
    """Apply a run's stored ``preprocessing`` (its normalisation, if any) to new samples.

    Args:
        X: ``(N, C, H, W) float32`` samples, already read and scaled the way the run's
            data was (e.g. with the run's ``channels`` and ``image_size``).
        preprocessing: the run's ``preprocessing`` mapping, or None.

    Returns:
        ``X`` itself when there is nothing to apply, else a new ``float32`` array.
    """
    spec = (preprocessing or {}).get("normalize")
    if not spec:
        return X
    return Normalization.from_dict(spec).apply(X)


def load_for_model(
    path: str | os.PathLike[str],
    preprocessing: Mapping[str, Any] | None,
    *,
    format: str | None = None,
    class_names: Sequence[str] | None = None,
    require_labels: bool = False,
    skip_bad: bool = False,
    channels_last: bool | None = None,
    label_column: str | None = None,
) -> OwnDataset:
    """Read new inputs the way a trained run's data was read, ready for its model.

    The run's ``preprocessing`` (:attr:`SplitData.preprocessing`) gives the channels and
    image size (images are converted and resized to them; CSV rows and arrays must
    have them) and the normalisation, which is applied to ``X`` (and ``test``).

    Args:
        path: a folder, CSV, ``.npz`` or ``.npy`` file (any format, not only the
            run's).
        preprocessing: the run's stored preprocessing; None or empty reads as stored.
        format: as in :func:`load_data_file`.
        class_names: the model's classes; labels in the file must be among them.
        require_labels: refuse a file without labels (evaluation).
        skip_bad: as in :func:`load_data_file`.
        channels_last: default: as the run's data was stored.
        label_column: CSV: default: found from the file.

    Raises:
        DatasetError: as :func:`load_data_file`, or the samples do not have the run's
            shape.
    """
    spec = dict(preprocessing or {})
    fmt = detect_format(path) if format is None else format
    size = spec.get("image_size")
    if channels_last is None:
        channels_last = bool(spec.get("channels_last", False)) and fmt != "folder"
    data = load_data_file(
        path, fmt, channels=spec.get("channels"), image_size=size,
        label_column=label_column if fmt == "csv" else None, channels_last=channels_last,
        skip_bad=skip_bad, require_labels=require_labels, class_names=class_names,
        cache=False,
    )  # fmt: skip
    if size is not None and tuple(data.image_shape[1:]) != tuple(size):
        raise DatasetError(
            f"{data.source}: samples are {data.image_shape[1]}×{data.image_shape[2]} but the "
            f"model was trained on {size[0]}×{size[1]}"
        )
    data.X = apply_preprocessing(data.X, spec)
    if data.test is not None:
        data.test = (apply_preprocessing(data.test[0], spec), data.test[1])
    return data


# ------------------------------------------------------------------------ the dispatcher


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of ``path``: ``"folder"`` for a directory, else from the extension.

    Raises:
        DatasetError: the path does not exist or its extension is not a known format.
    """
    p = Path(path)
    if p.is_dir():
        return "folder"
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    suffix = p.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if suffix in (".npz", ".npy"):
        return suffix[1:]
    if suffix in (".xlsx", ".xlsm"):
        raise DatasetError(
            f"{p}: an Excel workbook; 6×6 digit workbooks are read by load_digits6x6 "
            "(cnnx train --data FILE.xlsx); for other data save it as CSV"
        )
    raise DatasetError(
        f"{p}: cannot tell the format from the extension {suffix or '(none)'!r}; expected a "
        "folder of class folders, .csv, .npz or .npy (or give format=/--format)"
    )


def load_data_file(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    channels: int | None = None,
    image_size: int | str | Sequence[int] | None = None,
    label_column: str | None = None,
    channels_last: bool = False,
    labels: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
    require_labels: bool = True,
    class_names: Sequence[str] | None = None,
    cache: bool | None = None,
    progress: bool | None = None,
) -> OwnDataset:
    """Read an image folder, a CSV file, an ``.npz`` archive or an ``.npy`` array.

    Args:
        path: a folder ``root/<class>/<images>`` (optionally ``root/train/...`` and
            ``root/test/...``), a ``.csv`` file, an ``.npz`` file or an ``.npy`` file.
        format: ``"folder"``, ``"csv"``, ``"npz"`` or ``"npy"``; default: found from
            ``path`` (:func:`detect_format`).
        channels: 1 (greyscale) or 3 (RGB) to convert to; default: as stored (for an
            image folder: 1 if every image is greyscale, else 3).
        image_size: ``H``, ``(H, W)``, ``"H"`` or ``"HxW"``: the size images are
            resized to (folder) or the shape of a CSV row's pixels. Default: the most
            common size (folder), the square root of the pixel count (CSV).
        label_column: CSV only: ``"first"``, ``"last"``, ``"none"`` or a header name.
            Default: the column named ``label`` (any case) of a file with a header,
            else the first column.
        channels_last: arrays or CSV rows store pixels ``(H, W, C)`` rather than
            ``(C, H, W)``.
        labels: ``.npy`` only: the labels file (default: a partner file such as
            ``y.npy`` for ``X.npy``, ``labels.npy`` for ``images.npy``).
        skip_bad: leave out unreadable images, bad rows or bad samples (counted and
            named in ``notes``) instead of raising.
        require_labels: with False a file without labels loads (``y`` is None), for
            prediction.
        class_names: the classes labels must be among (e.g. a trained model's); their
            order gives the indices. Default: found from the data.
        cache: image folders: keep the decoded images in a ``.npz`` cache beside the
            folder (or under ``$CNNX_DATA_DIR``), reused while the files are unchanged.
            Default: for folders of 1,000 images or more.
        progress: progress bar while decoding images: None on a terminal only.

    Returns:
        An :class:`OwnDataset`.

    Raises:
        DatasetError: the data is missing or malformed; the message names the file
            and the row, sample or pixel.
        ValueError: an option is invalid or does not apply to the format.
    """
    fmt = detect_format(path) if format is None else str(format).lower()
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    size = parse_image_size(image_size)
    if label_column is not None and fmt != "csv":
        raise ValueError("label_column applies to CSV files only")
    if channels_last and fmt == "folder":
        raise ValueError("channels_last applies to arrays and CSV files, not to image folders")
    if labels is not None and fmt != "npy":
        raise ValueError("labels (a separate labels file) applies to .npy files only")
    common = {
        "channels": channels,
        "image_size": size,
        "skip_bad": skip_bad,
        "require_labels": require_labels,
        "class_names": None if class_names is None else [str(c) for c in class_names],
    }
    p = Path(path)
    if fmt == "folder":
        from cnnx.datasets.imagefolder import load_image_folder

        return load_image_folder(p, cache=cache, progress=progress, **common)
    if not p.exists():
        raise DatasetError(f"{p}: no such file")
    if p.is_dir():
        raise DatasetError(f"{p}: a folder, not a {fmt} file (use format 'folder' for images)")
    if fmt == "csv":
        from cnnx.datasets.csvfile import load_csv

        return load_csv(p, label_column=label_column, channels_last=channels_last, **common)
    from cnnx.datasets.arrays import load_npy, load_npz

    if fmt == "npz":
        return load_npz(p, channels_last=channels_last, **common)
    return load_npy(p, labels=labels, channels_last=channels_last, **common)


def parse_image_size(value: int | str | Sequence[int] | None) -> tuple[int, int] | None:
    """``28``, ``"28"``, ``"28x32"``, ``(28, 32)`` → ``(H, W)``; None stays None.

    Raises:
        ValueError: not one or two positive integers.
    """
    if value is None:
        return None
    if isinstance(value, str):
        parts = re.split(r"\s*[x×,]\s*", value.strip().lower())
        try:
            numbers_ = [int(p) for p in parts]
        except ValueError:
            numbers_ = []
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        numbers_ = [int(value)]
    elif isinstance(value, Sequence):
        numbers_ = [
            int(v) for v in value if isinstance(v, numbers.Integral) and not isinstance(v, bool)
        ]
        if len(numbers_) != len(value):
            numbers_ = []
    else:
        numbers_ = []
    if len(numbers_) not in (1, 2) or any(n < 1 for n in numbers_):
        raise ValueError(f"image size must be H or HxW with positive integers, got {value!r}")
    return (numbers_[0], numbers_[-1])


# ------------------------------------------------------------------ shared by the formats


def name_list(names: Sequence[str], shown: int = SHOWN_NAMES) -> str:
    """``"a, b, c"`` or ``"a, b, c, d, e and 7 more"``."""
    head = ", ".join(str(n) for n in names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"


def skipped_note(what: str, reasons: Sequence[tuple[str, str]]) -> str:
    """A note listing the first few skipped items with the first item's reason."""
    names = [name for name, _ in reasons]
    first_name, first_reason = reasons[0]
    what = what.removesuffix("s") if len(reasons) == 1 else what
    return (
        f"skipped {len(reasons)} bad {what}: {name_list(names)} "
        f"(first: {first_name}: {first_reason})"
    )


def scale_pixels(
    values: np.ndarray, where: Callable[[tuple[int, ...]], str], *, source: str
) -> tuple[np.ndarray, str]:
    """Scale an array of pixel values by the rule in the module docstring.

    Args:
        values: any-shaped array of pixel values.
        where: turns an index of ``values`` into a place in the file, e.g.
            ``"X[3, 0, 1, 2]"`` or ``"row 5, column 'pixel7'"``.
        source: the file, for messages.

    Returns:
        ``(float32 array, how it was scaled in words)``.

    Raises:
        DatasetError: integers outside 0-255, non-finite floats, or values that are
            not numbers; the message names the first bad place.
    """
    kind = values.dtype.kind
    if kind == "b":
        return values.astype(np.float32), "booleans as 0 and 1"
    if kind in "iu":
        bad = (values < 0) | (values > 255)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DatasetError(
                f"{source}: {where(index)} is {values[index]}; integer pixels must be 0-255 "
                "(they are divided by 255); store floats to keep your own scale"
            )
        note = "integers 0-255 divided by 255"
        return (values.astype(np.float32) / np.float32(255)).astype(np.float32), note
    if kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DatasetError(
                f"{source}: {where(index)} is {values[index]}; pixels must be finite"
            )
        return values.astype(np.float32), "floats kept as they are"
    raise DatasetError(
        f"{source}: pixels of dtype {values.dtype}; expected integers 0-255 or floats"
    )


def convert_channels(X: np.ndarray, channels: int | None, *, source: str) -> np.ndarray:
    """Convert ``(N, C, H, W)`` samples to ``channels``: RGB → grey by luminance
    (ITU-R 601-2, as Pillow does), grey → RGB by repetition; None keeps them."""
    have = X.shape[1]
    if channels is None or channels == have:
        return X
    if have == 3 and channels == 1:
        weights = np.asarray([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
        return (X * weights).sum(axis=1, keepdims=True, dtype=np.float32)
    if have == 1 and channels == 3:
        return np.repeat(X, 3, axis=1)
    raise DatasetError(f"{source}: samples have {have} channels; cannot convert them to {channels}")


def square_side(count: int) -> int | None:
    """``s`` if ``count == s * s``, else None."""
    side = math.isqrt(count)
    return side if side * side == count else None


_INT_RE = re.compile(r"[+-]?\d+")


def labels_to_indices(
    raw: Sequence[str] | np.ndarray,
    where: Callable[[int], str],
    *,
    source: str,
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Turn label values into class indices and class names.

    Integer labels (``3``, ``"3"``, ``3.0``) are sorted by value, text labels by name;
    a mix of the two, a non-integral number or an empty label is an error.

    Args:
        raw: one label per sample: strings, or a numeric or string array.
        where: turns a sample index into a place in the file, e.g. ``"row 7"``.
        source: the file, for messages.
        class_names: classes the labels must be among (their order gives the indices).

    Returns:
        ``(y (N,) int64, class names)``.

    Raises:
        DatasetError: naming the first bad label's place.
    """
    array = np.asarray(raw)
    if array.dtype.kind in "iu":
        keys = [str(int(v)) for v in array.tolist()]
        kinds = ["int"] * len(keys)
    elif array.dtype.kind == "b":
        raise DatasetError(f"{source}: labels are booleans; expected integers or class names")
    elif array.dtype.kind == "f":
        keys, kinds = [], []
        for i, v in enumerate(array.tolist()):
            if not math.isfinite(v) or v != int(v):
                raise DatasetError(
                    f"{source}: {where(i)}: label {v!r} is not an integer (labels must be "
                    "integers or class names)"
                )
            keys.append(str(int(v)))
            kinds.append("int")
    elif array.dtype.kind in "US":
        keys, kinds = [], []
        for i, v in enumerate(array.tolist()):
            text = v.decode() if isinstance(v, bytes) else v
            text = text.strip()
            if not text:
                raise DatasetError(f"{source}: {where(i)}: the label is empty")
            if _INT_RE.fullmatch(text):
                keys.append(str(int(text)))
                kinds.append("int")
                continue
            try:
                number = float(text)
            except ValueError:
                keys.append(text)
                kinds.append("name")
                continue
            raise DatasetError(
                f"{source}: {where(i)}: label {text!r} is "
                + ("not finite" if not math.isfinite(number) else "not an integer")
                + " (labels must be integers or class names)"
            )
    else:
        raise DatasetError(
            f"{source}: labels of dtype {array.dtype}; expected integers or class names"
        )
    if not keys:
        return np.zeros(0, dtype=np.int64), list(class_names or [])
    if class_names is None and "int" in kinds and "name" in kinds:
        first_int = kinds.index("int")
        first_name = kinds.index("name")
        raise DatasetError(
            f"{source}: {where(first_name)}: label {keys[first_name]!r} is a name but "
            f"{where(first_int)}'s label {keys[first_int]!r} is an integer; labels must be "
            "all integers or all class names"
        )
    if class_names is not None:
        names = [str(c) for c in class_names]
    elif kinds[0] == "int":
        names = [str(v) for v in sorted({int(k) for k in keys})]
    else:
        names = sorted(set(keys))
    index = {name: i for i, name in enumerate(names)}
    y = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        k = index.get(key)
        if k is None:
            raise DatasetError(
                f"{source}: {where(i)}: label {key!r} is not one of the {len(names)} classes "
                f"({name_list(names, 10)})"
            )
        y[i] = k
    return y, names
