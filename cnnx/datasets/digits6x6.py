"""The 6×6 handwritten-digit workbook (digits 1, 2 and 3).

Layout (one sheet named ``Data``; rows and columns 1-based as in Excel):

* sample ``i`` (0-based) is a 6×6 block of grey levels in rows 5-10 and columns
  ``12 + 6*i`` … ``17 + 6*i`` (L-Q for the first sample, R-W for the second, …);
* its one-hot label sits directly below, in rows 11-13 of column ``12 + 6*i``:
  row 11 is digit 1, row 12 digit 2, row 13 digit 3;
* pixels are numbers, either grey levels 0-255 (0 = background, 255 = ink) or
  already scaled to 0-1; an empty pixel cell means 0.

cnnx ships one such workbook (``cnnx/datasets/digits6x6.xlsx``, 96 samples, made by
``data/make_digits6x6.py``); :func:`load_digits6x6` reads it, or any workbook in the
same layout, such as a course file.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import math
import os
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

from cnnx.errors import DatasetError
from cnnx.utils.atomic import atomic_write_bytes

DIGITS6X6_CLASSES = ("1", "2", "3")
"""Display names of the classes; label ``k`` of :func:`load_digits6x6` is digit ``k + 1``."""

SHEET_NAME = "Data"
IMAGE_SIZE = 6
FIRST_PIXEL_ROW = 5
FIRST_LABEL_ROW = FIRST_PIXEL_ROW + IMAGE_SIZE  # rows 11, 12, 13
FIRST_COLUMN = 12  # column L
MAX_GREY_LEVEL = 255

BUNDLED_FILE = "digits6x6.xlsx"
_OLE2_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old binary .xls files

# Written into every workbook this module saves, so that the same arrays always give
# the same bytes (openpyxl would otherwise stamp the current time into the file).
_FIXED_TIMESTAMP = datetime.datetime(2024, 1, 1, 0, 0, 0)
_ZIP_DATE_TIME = (2024, 1, 1, 0, 0, 0)


def load_digits6x6(
    path: str | os.PathLike | None = None, *, require_labels: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Read a 6×6 digit workbook into arrays.

    The number of samples is found by reading blocks from column L rightwards until
    one whose three label cells are all empty (with ``require_labels=False``: until
    one whose label and pixel cells are all empty); a value in any block after that
    blank one is an error, so samples after a gap are never dropped silently.
    ``len(X)`` is the number of samples read and :func:`samples_range` names their
    cells. Scaling is decided per workbook: if
    every pixel value lies within [0, 1] the values are kept as they are, otherwise
    (grey levels up to 255) all of them are divided by 255. Empty pixel cells are 0.
    Cells outside the sample blocks (notes, headers, a preview) are ignored. A
    formula cell is read through the result the spreadsheet program saved with it.

    Args:
        path: the ``.xlsx`` file; ``None`` reads the workbook bundled with cnnx
            (96 samples, 32 of each digit).
        require_labels: with False, blocks without a label are samples too (for
            prediction); their label is -1. Labels that are present are still checked.

    Returns:
        ``(X, y)``: ``X`` is ``(N, 1, 6, 6) float32`` in [0, 1]; ``y`` is ``(N,) int64``
        in {0, 1, 2}, where 0 is digit 1, 1 is digit 2 and 2 is digit 3
        (see :data:`DIGITS6X6_CLASSES`).

    Raises:
        DatasetError: the file is missing or is not an ``.xlsx`` workbook, has no
            ``Data`` sheet, holds no samples, has a blank sample block followed by
            further samples, or a pixel or label cell is invalid. The message names the
            file and, where it applies, the cell (``Data!N7``) or range (``Data!R5:W13``).
        TypeError: ``path`` is neither ``None``, a ``str`` nor a path object.
    """
    if path is None:
        ref = resources.files("cnnx.datasets").joinpath(BUNDLED_FILE)
        with resources.as_file(ref) as bundled:
            return _load(Path(bundled), require_labels)
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be None, a str or a path object, not {type(path).__name__}")
    return _load(Path(path), require_labels)


def write_digits6x6(path: str | os.PathLike, X, y) -> None:
    """Write samples into a workbook in the 6×6 digit layout.

    Grey levels are stored as integers 0-255. The file is written to a temporary name
    in the same directory and then moved over ``path``, so an existing file is never
    left half-written. Timestamps inside the file are fixed, so the same arrays give
    the same bytes.

    Args:
        path: the ``.xlsx`` file to create or replace.
        X: ``(N, 1, 6, 6)`` or ``(N, 6, 6)``; either an integer array of grey levels
            0-255 (written as they are) or a floating array in [0, 1] (multiplied by
            255 and rounded).
        y: ``(N,)`` integer labels in {0, 1, 2} (0 is digit 1).

    Raises:
        TypeError: ``X`` or ``y`` has an unsuitable dtype.
        ValueError: ``X`` or ``y`` has the wrong shape or values out of range.
    """
    levels = _grey_levels(X)
    labels = _labels_to_write(y, levels.shape[0])

    import openpyxl
    from openpyxl.utils import get_column_letter

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = SHEET_NAME
    sheet["A1"] = "cnnx 6x6 digit workbook"
    sheet["A2"] = (
        "Sample i (0-based): pixels 0-255 in rows 5-10, columns 12+6i to 17+6i; "
        "one-hot label in rows 11-13 of column 12+6i (row 11 = digit 1, 12 = digit 2, "
        "13 = digit 3)."
    )
    for i in range(levels.shape[0]):
        first_col = FIRST_COLUMN + IMAGE_SIZE * i
        for r in range(IMAGE_SIZE):
            for c in range(IMAGE_SIZE):
                sheet.cell(
                    row=FIRST_PIXEL_ROW + r, column=first_col + c, value=int(levels[i, r, c])
                )
        for k in range(len(DIGITS6X6_CLASSES)):
            sheet.cell(row=FIRST_LABEL_ROW + k, column=first_col, value=int(labels[i] == k))
    for i in range(levels.shape[0] * IMAGE_SIZE):
        sheet.column_dimensions[get_column_letter(FIRST_COLUMN + i)].width = 4.5
    workbook.properties.creator = "cnnx"
    workbook.properties.created = _FIXED_TIMESTAMP
    workbook.properties.modified = _FIXED_TIMESTAMP
    atomic_write_bytes(Path(path), _workbook_bytes(workbook))


# ---------------------------------------------------------------------------- reading


def _cell_ref(row: int, column: int) -> str:
    """``Data!N7`` for row 7, column 14."""
    from openpyxl.utils import get_column_letter

    return f"{SHEET_NAME}!{get_column_letter(column)}{row}"


def _label_range_ref(first_col: int) -> str:
    """``Data!L11:L13`` for the label cells below the block starting in ``first_col``."""
    last = _cell_ref(FIRST_LABEL_ROW + len(DIGITS6X6_CLASSES) - 1, first_col)
    return f"{_cell_ref(FIRST_LABEL_ROW, first_col)}:{last.split('!')[1]}"


def _block_range_ref(i: int) -> str:
    """``Data!R5:W13`` for sample ``i`` (0-based): its pixels and the label rows below."""
    first_col = FIRST_COLUMN + IMAGE_SIZE * i
    last = _cell_ref(FIRST_LABEL_ROW + len(DIGITS6X6_CLASSES) - 1, first_col + IMAGE_SIZE - 1)
    return f"{_cell_ref(FIRST_PIXEL_ROW, first_col)}:{last.split('!')[1]}"


def samples_range(n: int) -> str:
    """The cells that ``n`` samples occupy, as a range: ``Data!L5:VO13`` for 96.

    ``len(X)`` of :func:`load_digits6x6` is the number of samples read; this names
    where they were read from, for messages such as "96 samples (Data!L5:VO13)".

    Raises:
        ValueError: ``n`` is not a positive integer.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"samples_range: n must be a positive integer, got {n!r}")
    first = _block_range_ref(0).split(":")[0]
    return f"{first}:{_block_range_ref(n - 1).split(':')[1]}"


def _load(path: Path, require_labels: bool = True) -> tuple[np.ndarray, np.ndarray]:
    name = str(path)
    if not path.exists():
        raise DatasetError(f"{name}: file not found")
    if not path.is_file():
        raise DatasetError(f"{name}: not a file")
    cells = _read_cells(path, data_only=False)
    formulas = {rc: value for rc, (value, kind) in cells.items() if kind == "f"}
    if formulas:
        saved = _read_cells(path, data_only=True)
        for (row, col), formula in sorted(formulas.items()):
            value = saved.get((row, col), (None, "n"))[0]
            if value is None:
                raise DatasetError(
                    f"{name}: {_cell_ref(row, col)} holds the formula {formula!s} but no "
                    "saved result; open the workbook in Excel or LibreOffice and save it "
                    "so the results are stored"
                )
            cells[(row, col)] = saved[(row, col)]
    return _parse_samples(name, {rc: value for rc, (value, _) in cells.items()}, require_labels)


def _read_cells(path: Path, data_only: bool) -> dict[tuple[int, int], tuple[object, str]]:
    """Return {(row, column): (value, openpyxl data type)} for every non-empty cell of
    the Data sheet in rows 5-13 from column L on."""
    name = str(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DatasetError(f"{name}: cannot be opened ({exc.strerror or exc})") from exc
    with handle:
        if handle.read(len(_OLE2_SIGNATURE)) == _OLE2_SIGNATURE:
            raise DatasetError(
                f"{name}: this is an old Excel 97-2003 (.xls) file; open it in Excel or "
                "LibreOffice and save it as 'Excel Workbook (.xlsx)'"
            )
        handle.seek(0)
        return _read_open_workbook(name, handle, data_only)


def _read_open_workbook(name: str, handle, data_only: bool) -> dict:
    import openpyxl

    try:
        # Given a file object, openpyxl judges the file by its content, not its
        # extension, so a workbook named "digits" or "digits.XLSX" loads too.
        workbook = openpyxl.load_workbook(handle, read_only=True, data_only=data_only)
    except Exception as exc:  # openpyxl, zipfile and XML parsers raise many kinds
        raise DatasetError(
            f"{name}: not a readable Excel .xlsx workbook ({type(exc).__name__}: {exc}); "
            "save it from Excel or LibreOffice as 'Excel Workbook (.xlsx)'"
        ) from exc
    try:
        if SHEET_NAME not in workbook.sheetnames:
            sheets = ", ".join(repr(s) for s in workbook.sheetnames) or "none"
            raise DatasetError(f"{name}: no sheet named {SHEET_NAME!r} (sheets: {sheets})")
        cells: dict[tuple[int, int], tuple[object, str]] = {}
        try:
            sheet = workbook[SHEET_NAME]
            # The <dimension> a file declares may be stale; trusting it in read-only
            # mode would silently cut off columns beyond it.
            sheet.reset_dimensions()
            for row in sheet.iter_rows(
                min_row=FIRST_PIXEL_ROW,
                max_row=FIRST_LABEL_ROW + len(DIGITS6X6_CLASSES) - 1,
                min_col=FIRST_COLUMN,
            ):
                for cell in row:
                    value = getattr(cell, "value", None)
                    if value is not None:
                        cells[(cell.row, cell.column)] = (value, cell.data_type)
        except Exception as exc:  # a damaged sheet fails while it is being parsed
            raise DatasetError(
                f"{name}: sheet {SHEET_NAME!r} cannot be read ({type(exc).__name__}: {exc})"
            ) from exc
        return cells
    finally:
        # Closing a damaged archive may fail too; there is nothing left to save.
        with contextlib.suppress(Exception):
            workbook.close()


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _is_number(value: object) -> bool:
    # bool is an int subclass, but TRUE in a pixel cell is a mistake, not 1.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe(value: object) -> str:
    if _is_blank(value):
        return "empty"
    if isinstance(value, bool):
        return f"{value} (a boolean)"
    if isinstance(value, str):
        return f"{value!r} (text)"
    if _is_number(value):
        return repr(value)
    return f"{value!r} ({type(value).__name__})"


def _parse_samples(
    name: str, values: dict[tuple[int, int], object], require_labels: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    n_classes = len(DIGITS6X6_CLASSES)
    images: list[np.ndarray] = []
    labels: list[int] = []
    while True:
        i = len(images)
        first_col = FIRST_COLUMN + IMAGE_SIZE * i
        label_cells = [(FIRST_LABEL_ROW + k, first_col) for k in range(n_classes)]
        label_values = [values.get(rc) for rc in label_cells]
        pixel_cells = [
            (FIRST_PIXEL_ROW + r, first_col + c)
            for r in range(IMAGE_SIZE)
            for c in range(IMAGE_SIZE)
        ]
        if all(_is_blank(v) for v in label_values):
            if not require_labels and any(not _is_blank(values.get(rc)) for rc in pixel_cells):
                labels.append(-1)
                images.append(_parse_pixels(name, i, pixel_cells, values))
                continue
            for rc in pixel_cells:
                if not _is_blank(values.get(rc)):
                    raise DatasetError(
                        f"{name}: sample {i + 1} has pixel values ({_cell_ref(*rc)} is "
                        f"{_describe(values[rc])}) but its label cells "
                        f"{_label_range_ref(first_col)} are empty; give it a one-hot label "
                        "or clear its pixels"
                    )
            _refuse_samples_after(name, i, values)
            break
        labels.append(_parse_label(name, i, label_cells, label_values))
        images.append(_parse_pixels(name, i, pixel_cells, values))
    if not images:
        raise DatasetError(
            f"{name}: no samples: the label cells {_label_range_ref(FIRST_COLUMN)} of the "
            f"first sample are empty{'' if require_labels else ' and so are its pixels'} "
            "(expected 6×6 "
            "pixel blocks in rows 5-10 from column L on, each with a one-hot label in "
            "rows 11-13 below its first column)"
        )
    pixels = np.stack(images)  # float64 so that v / 255 is exact before the cast
    if pixels.max() > 1.0:
        pixels = pixels / MAX_GREY_LEVEL
    X = pixels.astype(np.float32).reshape(len(images), 1, IMAGE_SIZE, IMAGE_SIZE)
    y = np.asarray(labels, dtype=np.int64)
    return X, y


def _is_block_cell(row: int, col: int) -> bool:
    """Whether a cell in rows 5-13 from column L on is a pixel or label cell of a sample."""
    if row < FIRST_LABEL_ROW:
        return True
    return (col - FIRST_COLUMN) % IMAGE_SIZE == 0


def _refuse_samples_after(name: str, i: int, values: dict[tuple[int, int], object]) -> None:
    """Sample ``i`` is blank: raise if any later sample block holds a value.

    Reading stops at the first blank block, so samples after a gap would otherwise be
    dropped without a word.
    """
    next_col = FIRST_COLUMN + IMAGE_SIZE * (i + 1)
    later = [
        (col, row)
        for (row, col), value in values.items()
        if col >= next_col and _is_block_cell(row, col) and not _is_blank(value)
    ]
    if not later:
        return
    col, row = min(later)
    j = (col - FIRST_COLUMN) // IMAGE_SIZE
    raise DatasetError(
        f"{name}: sample {i + 1} ({_block_range_ref(i)}) is blank but sample {j + 1} "
        f"follows it ({_cell_ref(row, col)} is {_describe(values[(row, col)])}); samples "
        "must be in consecutive blocks, so fill or remove the blank block (move the later "
        "samples left by 6 columns)"
    )


def _parse_label(name: str, i: int, cells: list[tuple[int, int]], label_values: list) -> int:
    ones = [k for k, v in enumerate(label_values) if _is_number(v) and v == 1]
    zeros = [k for k, v in enumerate(label_values) if _is_number(v) and v == 0]
    if len(ones) == 1 and len(zeros) == len(label_values) - 1:
        return ones[0]
    shown = ", ".join(
        f"{_cell_ref(*rc)}={_describe(v)}" for rc, v in zip(cells, label_values, strict=True)
    )
    raise DatasetError(
        f"{name}: the label of sample {i + 1} is not one-hot ({shown}); expected exactly "
        "one 1 and two 0s (row 11 = digit 1, row 12 = digit 2, row 13 = digit 3)"
    )


def _parse_pixels(name: str, i: int, cells: list[tuple[int, int]], values: dict) -> np.ndarray:
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float64)
    for k, rc in enumerate(cells):
        value = values.get(rc)
        if _is_blank(value):
            continue
        if not _is_number(value) or not math.isfinite(value) or not 0 <= value <= MAX_GREY_LEVEL:
            raise DatasetError(
                f"{name}: {_cell_ref(*rc)} (sample {i + 1}) is {_describe(value)}; a pixel "
                f"must be a number from 0 to {MAX_GREY_LEVEL} (or from 0 to 1)"
            )
        image[divmod(k, IMAGE_SIZE)] = value
    return image


# ---------------------------------------------------------------------------- writing


def _grey_levels(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 4 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 3 or X.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or X.shape[0] == 0:
        raise ValueError(f"X must have shape (N, 1, 6, 6) or (N, 6, 6) with N >= 1, got {X.shape}")
    if np.issubdtype(X.dtype, np.integer):
        if X.min() < 0 or X.max() > MAX_GREY_LEVEL:
            raise ValueError(
                f"integer X must hold grey levels 0-255, got values {X.min()}..{X.max()}"
            )
        return X.astype(np.int64)
    if np.issubdtype(X.dtype, np.floating):
        if not np.all(np.isfinite(X)) or X.min() < 0 or X.max() > 1:
            raise ValueError("floating X must hold finite values in [0, 1]")
        return np.rint(X.astype(np.float64) * MAX_GREY_LEVEL).astype(np.int64)
    raise TypeError(f"X must be an integer or floating array, got dtype {X.dtype}")


def _labels_to_write(y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y must be an integer array, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match X, got {y.shape}")
    if y.min() < 0 or y.max() >= len(DIGITS6X6_CLASSES):
        raise ValueError(f"y must hold class indices 0, 1, 2, got values {y.min()}..{y.max()}")
    return y.astype(np.int64)


def _workbook_bytes(workbook) -> bytes:
    """Serialise a workbook with fixed zip timestamps (reproducible bytes)."""
    from openpyxl.writer.excel import ExcelWriter

    raw = io.BytesIO()
    ExcelWriter(workbook, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED)).save()
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(raw.getvalue())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_DATE_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()
