"""CSV files: one row per sample, a label column and pixel columns.

Layouts read (comma-, semicolon- or tab-separated, UTF-8):

* the Kaggle MNIST files: a header row ``label,pixel0,…,pixel783``, the label first;
  their ``test.csv`` has no label column (``require_labels=False``, for prediction);
* headerless files with the label first or last (``label_column="first"``/``"last"``).

A header is recognised by having two or more cells that are not numbers. Rows are
counted as a spreadsheet shows them: the header is row 1. Blank lines are ignored.
Pixels are ``C·H·W`` values per row: ``H×W`` from ``image_size``, else the square root of
the pixel count (one channel; three when only a third of it is a square), stored
channel by channel (``channels_last=True``: pixel by pixel, ``R, G, B, R, …``).
Values written as integers (no decimal point or exponent) must be 0-255 and are divided
by 255; others are kept as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnx.datasets.own import (
    OwnDataset,
    convert_channels,
    labels_to_indices,
    name_list,
    scale_pixels,
    skipped_note,
    square_side,
)
from cnnx.errors import DatasetError

__all__ = ["LABEL_NAMES", "load_csv"]

#: Header names recognised as the label column when ``label_column`` is not given.
LABEL_NAMES = ("label", "labels", "class", "target", "y")

_NUMBER_RE = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_NOT_INTEGER_RE = re.compile(r"[.eEnN]")


def load_csv(
    path: Path,
    *,
    label_column: str | None = None,
    channels: int | None = None,
    image_size: tuple[int, int] | None = None,
    channels_last: bool = False,
    skip_bad: bool = False,
    require_labels: bool = True,
    class_names: Sequence[str] | None = None,
) -> OwnDataset:
    """Read a CSV file (see the module docstring); arguments as in
    :func:`cnnx.datasets.load_data_file`."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{source}: not a UTF-8 text file (byte {exc.start}); save it as CSV (UTF-8)"
        ) from None
    except OSError as exc:
        raise DatasetError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    rows = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not rows:
        raise DatasetError(f"{source}: the file is empty (empty dataset)")
    delimiter = _delimiter(rows[0][1])
    first = [cell.strip().strip('"') for cell in rows[0][1].split(delimiter)]
    n_columns = len(first)
    has_header = sum(not _NUMBER_RE.fullmatch(cell) for cell in first) >= min(2, n_columns)
    header = first if has_header else None
    data_rows = rows[1:] if has_header else rows
    if not data_rows:
        raise DatasetError(f"{source}: a header row but no data rows (empty dataset)")

    label_index = _label_index(source, label_column, header, n_columns, image_size, require_labels)
    n_pixels = n_columns - (label_index is not None)
    shape = _image_shape(source, n_pixels, image_size)

    def column_name(k: int) -> str:
        if header is not None:
            return f"column {k + 1} ({header[k]!r})"
        return f"column {k + 1}"

    # Rows are kept as strings (a split row of 785 cells costs 50 times its text in
    # Python objects); the column count is a cheap count of delimiters.
    bad: list[tuple[str, str]] = []
    good: list[tuple[int, str]] = []
    for number, line in data_rows:
        count = line.count(delimiter) + 1
        if count != n_columns:
            reason = (
                f"has {count} values; row {rows[0][0]} has {n_columns}"
                if header is None
                else f"has {count} values; the header has {n_columns}"
            )
            if not skip_bad:
                raise DatasetError(f"{source}: row {number} {reason}")
            bad.append((f"row {number}", reason))
            continue
        good.append((number, line))

    pixel_columns = [k for k in range(n_columns) if k != label_index]
    values, good, more_bad = _parse_pixels(
        source, good, delimiter, label_index, n_columns, column_name, skip_bad
    )
    bad += more_bad
    if not good:
        raise DatasetError(
            f"{source}: no usable rows (empty dataset)"
            + (f"; all {len(bad)} rows are bad (first: {bad[0][0]}: {bad[0][1]})" if bad else "")
        )
    pixel_text = "\n".join(_pixel_part(line, delimiter, label_index, n_columns) for _, line in good)
    written_as_integers = _NOT_INTEGER_RE.search(pixel_text) is None
    del pixel_text
    if written_as_integers:
        values = values.astype(np.int64)

    def where(index: tuple[int, ...]) -> str:
        return f"row {good[index[0]][0]}, {column_name(pixel_columns[index[1]])}"

    X, scaling = scale_pixels(values, where, source=source)
    c, h, w = shape
    if channels_last:
        X = X.reshape(len(X), h, w, c).transpose(0, 3, 1, 2)
    else:
        X = X.reshape(len(X), c, h, w)
    X = np.ascontiguousarray(convert_channels(X, channels, source=source))

    y, names = None, list(class_names or [])
    if label_index is not None:
        raw = [_label_part(line, delimiter, label_index, n_columns) for _, line in good]
        y, names = labels_to_indices(
            raw, lambda i: f"row {good[i][0]}", source=source, class_names=class_names
        )
    notes = []
    if bad:
        notes.append(skipped_note("rows", bad))
    if written_as_integers and values.size and int(values.max()) <= 1:
        notes.append(
            "every pixel is 0 or 1, written as an integer, so it was divided by 255 like all "
            "integer pixels; write them as 0.0 and 1.0 to keep them as they are, or normalise"
        )
    label_name = None
    if label_index is not None:
        label_name = (
            header[label_index] if header is not None else ("first" if label_index == 0 else "last")
        )
    options = {
        "channels": int(X.shape[1]),
        "image_size": [int(h), int(w)],
        "channels_last": channels_last,
        "label_column": label_name,
    }
    return OwnDataset(
        X, y, names, source, "csv", notes=notes, skipped=[name for name, _ in bad],
        scaling=scaling, options=options, sample_names=[f"row {n}" for n, _ in good],
    )  # fmt: skip


def _delimiter(line: str) -> str:
    for candidate in (",", ";", "\t"):
        if candidate in line:
            return candidate
    return ","


def _label_index(
    source: str,
    label_column: str | None,
    header: list[str] | None,
    n_columns: int,
    image_size: tuple[int, int] | None,
    require_labels: bool,
) -> int | None:
    choice = None if label_column is None else str(label_column).strip()
    lowered = None if choice is None else choice.lower()
    if lowered == "none":
        if require_labels:
            raise DatasetError(f"{source}: label column 'none', but labels are needed here")
        return None
    if lowered == "first":
        return 0
    if lowered == "last":
        return n_columns - 1
    if choice is not None:
        if header is None:
            raise DatasetError(
                f"{source}: has no header row, so the label column cannot be found by the "
                f"name {choice!r}; use first or last"
            )
        matches = [k for k, name in enumerate(header) if name.lower() == lowered]
        if not matches:
            raise DatasetError(
                f"{source}: no column named {choice!r} in the header (columns: "
                f"{name_list(header, 6)})"
            )
        return matches[0]
    if header is not None:
        for k, name in enumerate(header):
            if name.lower() in LABEL_NAMES:
                return k
        if require_labels:
            raise DatasetError(
                f"{source}: the header has no label column (none named "
                f"{'/'.join(LABEL_NAMES)}; columns: {name_list(header, 6)}); name it with "
                "label_column=/--label-column NAME, or first/last"
            )
        return None
    if not require_labels and _pixel_count_fits(n_columns, image_size):
        return None
    return 0


def _pixel_count_fits(count: int, image_size: tuple[int, int] | None) -> bool:
    if image_size is not None:
        h, w = image_size
        return count in (h * w, 3 * h * w)
    return square_side(count) is not None or (
        count % 3 == 0 and square_side(count // 3) is not None
    )


def _image_shape(
    source: str, n_pixels: int, image_size: tuple[int, int] | None
) -> tuple[int, int, int]:
    if n_pixels < 1:
        raise DatasetError(f"{source}: no pixel columns besides the label")
    if image_size is not None:
        h, w = image_size
        if n_pixels % (h * w) or n_pixels // (h * w) not in (1, 3):
            raise DatasetError(
                f"{source}: rows have {n_pixels} pixel values; an image of {h}×{w} needs "
                f"{h * w} (greyscale) or {3 * h * w} (colour)"
            )
        return n_pixels // (h * w), h, w
    side = square_side(n_pixels)
    if side is not None:
        return 1, side, side
    side = square_side(n_pixels // 3) if n_pixels % 3 == 0 else None
    if side is not None:
        return 3, side, side
    raise DatasetError(
        f"{source}: rows have {n_pixels} pixel values, not a square number (nor three times "
        "one); give the image size (image_size=/--image-size HxW)"
    )


def _pixel_part(line: str, delimiter: str, label_index: int | None, n_columns: int) -> str:
    """The row without its label cell."""
    if label_index is None:
        return line
    if label_index == 0:
        return line.split(delimiter, 1)[1]
    if label_index == n_columns - 1:
        return line.rsplit(delimiter, 1)[0]
    cells = line.split(delimiter)
    del cells[label_index]
    return delimiter.join(cells)


def _label_part(line: str, delimiter: str, label_index: int, n_columns: int) -> str:
    if label_index == 0:
        cell = line.split(delimiter, 1)[0]
    elif label_index == n_columns - 1:
        cell = line.rsplit(delimiter, 1)[1]
    else:
        cell = line.split(delimiter)[label_index]
    return cell.strip().strip('"')


def _parse_pixels(
    source: str,
    good: list[tuple[int, str]],
    delimiter: str,
    label_index: int | None,
    n_columns: int,
    column_name,
    skip_bad: bool,
) -> tuple[np.ndarray, list[tuple[int, str]], list[tuple[str, str]]]:
    """Parse the pixel cells of the ``good`` rows as float64 ``(rows, pixels)``.

    NumPy's parser reads the whole block at once; only when it fails is every row
    checked cell by cell, to name the first bad cell (or to skip the bad rows).
    """
    pixel_columns = [k for k in range(n_columns) if k != label_index]
    try:
        values = np.loadtxt(
            [_pixel_part(line, delimiter, label_index, n_columns) for _, line in good],
            delimiter=delimiter, dtype=np.float64, ndmin=2, comments=None,
        )  # fmt: skip
        if values.shape == (len(good), len(pixel_columns)):
            return values, good, []
    except ValueError:
        pass
    kept_values, kept, bad = [], [], []
    for number, line in good:
        cells = line.split(delimiter)
        row = np.empty(len(pixel_columns), dtype=np.float64)
        problem = None
        for j, k in enumerate(pixel_columns):
            cell = cells[k].strip().strip('"')
            if not cell:
                problem = f"{column_name(k)} is empty"
                break
            try:
                row[j] = float(cell)
            except ValueError:
                problem = f"{column_name(k)} is {cell!r}, not a number"
                break
        if problem is None:
            kept_values.append(row)
            kept.append((number, line))
        elif skip_bad:
            bad.append((f"row {number}", problem))
        else:
            raise DatasetError(f"{source}: row {number}, {problem}")
    values = (
        np.stack(kept_values)
        if kept_values
        else np.zeros((0, len(pixel_columns)), dtype=np.float64)
    )
    return values, kept, bad
