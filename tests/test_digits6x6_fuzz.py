"""Property tests: load_digits6x6 on random, damaged and oddly filled workbooks.

Whatever the file holds, the loader either returns the right arrays or raises a
DatasetError with a message naming the file; never any other exception and never a
wrong array. Runs are derandomized, so they are the same on every machine.
"""

from __future__ import annotations

import datetime
import io
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cnnx.datasets.digits6x6 import load_digits6x6, write_digits6x6
from cnnx.errors import DatasetError

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


LEVELS = np.random.default_rng(0).integers(0, 256, size=(4, 6, 6))
LABELS = [0, 1, 2, 1]


@pytest.fixture(scope="module")
def valid_bytes(workdir) -> bytes:
    """A small valid workbook (4 samples) to truncate and mutate."""
    path = workdir / "valid.xlsx"
    write_digits6x6(path, LEVELS, LABELS)
    return path.read_bytes()


def assert_original(outcome) -> None:
    """A damaged copy of the valid workbook that still loads must give its data."""
    X, y = outcome
    np.testing.assert_array_equal(X[:, 0], (LEVELS / 255).astype(np.float32))
    assert y.tolist() == LABELS


def load_or_error(path: Path):
    """Return (X, y) or the DatasetError message; any other exception fails the test."""
    try:
        X, y = load_digits6x6(path)
    except DatasetError as exc:
        message = str(exc)
        assert str(path) in message and len(message) > len(str(path)) + 10
        # what kind of error, for --hypothesis-show-statistics
        event("DatasetError: " + " ".join(message[len(str(path)) + 2 :].split()[:4]).split("(")[0])
        return message
    event("loaded")
    assert X.ndim == 4 and X.shape[1:] == (1, 6, 6) and X.shape[0] >= 1
    assert X.dtype == np.float32 and y.dtype == np.int64 and y.shape == (X.shape[0],)
    assert np.all((X >= 0) & (X <= 1)) and np.all((y >= 0) & (y <= 2))
    return X, y


# ------------------------------------------------------------------ damaged files


@settings(FUZZ, max_examples=150)
@given(data=st.binary(max_size=3000))
def test_random_bytes(workdir, data):
    path = workdir / "random.xlsx"
    path.write_bytes(data)
    assert isinstance(load_or_error(path), str)


@settings(FUZZ, max_examples=150)
@given(cut=st.integers(min_value=0, max_value=10**6))
def test_truncated_workbook(workdir, valid_bytes, cut):
    path = workdir / "truncated.xlsx"
    path.write_bytes(valid_bytes[: cut % len(valid_bytes)])
    assert isinstance(load_or_error(path), str)


@settings(FUZZ, max_examples=200)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=255)
        ),
        min_size=1,
        max_size=8,
    )
)
def test_mutated_workbook(workdir, valid_bytes, edits):
    data = bytearray(valid_bytes)
    for position, value in edits:
        data[position % len(data)] = value
    path = workdir / "mutated.xlsx"
    path.write_bytes(bytes(data))
    outcome = load_or_error(path)
    if not isinstance(outcome, str):
        # an edit the zip format does not notice (in a timestamp, say) must not change
        # the data; one that does is caught by the CRC check
        assert_original(outcome)


@settings(FUZZ, max_examples=100)
@given(
    member=st.sampled_from(
        [
            "xl/worksheets/sheet1.xml",
            "xl/workbook.xml",
            "[Content_Types].xml",
            "xl/_rels/workbook.xml.rels",
            "xl/sharedStrings.xml",
            "xl/styles.xml",
        ]
    ),
    junk=st.binary(max_size=200),
    drop=st.booleans(),
)
def test_workbook_with_a_damaged_part(workdir, valid_bytes, member, junk, drop):
    """Zip intact, but one XML part replaced by junk or missing."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(valid_bytes)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            if info.filename == member:
                if drop:
                    continue
                dst.writestr(info, junk)
            else:
                dst.writestr(info, src.read(info.filename))
    path = workdir / "part.xlsx"
    path.write_bytes(out.getvalue())
    outcome = load_or_error(path)
    if not isinstance(outcome, str):  # e.g. styles.xml dropped: the cells are intact
        assert_original(outcome)


# ----------------------------------------------- valid workbooks, odd cell values

PLAIN_TEXT = st.text(
    alphabet=st.characters(codec="ascii", categories=["L", "N", "P", "Zs"]), max_size=6
).filter(lambda s: not s.startswith("="))

CELL = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=-1000, max_value=1000),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=-300.0, max_value=300.0, allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 255, 256, -1, 0.0, 1.0, 1.0000001, 254.9999, 255.0001, 10**12]),
    st.booleans(),
    PLAIN_TEXT,
    st.just(datetime.datetime(2024, 3, 1, 12, 0)),
)

VALID_LABEL = st.sampled_from([(1, 0, 0), (0, 1, 0), (0, 0, 1), (1.0, 0.0, 0.0), (0, 0.0, 1.0)])
# 8 in 10 labels valid, 1 odd, 1 empty (which ends the samples, or is an error when
# samples follow)
LABEL = st.integers(min_value=0, max_value=9).flatmap(
    lambda k: (
        VALID_LABEL
        if k < 8
        else st.tuples(CELL, CELL, CELL)
        if k == 8
        else st.just((None, None, None))
    )
)


def grid(values):
    return st.lists(st.lists(values, min_size=6, max_size=6), min_size=6, max_size=6)


@st.composite
def edited_image(draw):
    """A valid grey-level image with a few cells replaced by arbitrary values."""
    image = draw(grid(st.integers(min_value=0, max_value=255)))
    for r, c, value in draw(
        st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), CELL), min_size=1, max_size=3)
    ):
        image[r][c] = value
    return image


IMAGE = st.one_of(
    grid(st.integers(min_value=0, max_value=255)),
    grid(st.floats(min_value=0.0, max_value=1.0)),
    grid(st.one_of(st.none(), st.integers(min_value=0, max_value=255))),
    edited_image(),
    grid(CELL),
)


def is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def column_letters(column: int) -> str:
    letters = ""
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def expected_outcome(samples):
    """The loader's specification, written out independently: ("error", fragment) or
    ("ok", X, y)."""
    images, labels = [], []
    for i, (image, label) in enumerate(samples):
        col0 = 12 + 6 * i
        if all(is_blank(v) for v in label):
            for r in range(6):
                for c in range(6):
                    if not is_blank(image[r][c]):
                        return ("error", f"Data!{column_letters(col0 + c)}{5 + r}")
            # a blank block followed by any later sample value: the blank block's range
            for later_image, later_label in samples[i + 1 :]:
                cells = [v for row in later_image for v in row] + list(later_label)
                if any(not is_blank(v) for v in cells):
                    last = column_letters(col0 + 5)
                    return ("error", f"Data!{column_letters(col0)}5:{last}13")
            break
        ones = sum(1 for v in label if is_number(v) and v == 1)
        zeros = sum(1 for v in label if is_number(v) and v == 0)
        if not (ones == 1 and zeros == 2):
            return ("error", f"Data!{column_letters(col0)}11")
        labels.append(next(k for k, v in enumerate(label) if is_number(v) and v == 1))
        pixels = np.zeros((6, 6))
        for r in range(6):
            for c in range(6):
                v = image[r][c]
                if is_blank(v):
                    continue
                if not is_number(v) or not (0 <= v <= 255):
                    return ("error", f"Data!{column_letters(col0 + c)}{5 + r}")
                pixels[r, c] = v
        images.append(pixels)
    if not images:
        return ("error", "no samples")
    X = np.stack(images)
    if X.max() > 1:
        X = X / 255
    return ("ok", X.astype(np.float32)[:, None], np.array(labels, dtype=np.int64))


def write_samples(path: Path, samples) -> None:
    workbook = openpyxl.Workbook()
    ws = workbook.active
    ws.title = "Data"
    for i, (image, label) in enumerate(samples):
        col0 = 12 + 6 * i
        for r in range(6):
            for c in range(6):
                ws.cell(row=5 + r, column=col0 + c, value=image[r][c])
        for k in range(3):
            ws.cell(row=11 + k, column=col0, value=label[k])
    workbook.save(path)


def check_against_specification(path: Path, samples) -> None:
    write_samples(path, samples)
    outcome = load_or_error(path)
    expected = expected_outcome(samples)
    if expected[0] == "error":
        assert isinstance(outcome, str), f"expected an error at {expected[1]}, got arrays"
        assert expected[1] in outcome
    else:
        assert not isinstance(outcome, str), f"unexpected error: {outcome}"
        np.testing.assert_array_equal(outcome[0], expected[1])
        np.testing.assert_array_equal(outcome[1], expected[2])


@settings(FUZZ, max_examples=300)
@given(samples=st.lists(st.tuples(IMAGE, LABEL), min_size=0, max_size=4))
def test_workbook_with_random_cell_values(workdir, samples):
    check_against_specification(workdir / "cells.xlsx", samples)


BLANK_BLOCK = ([[None] * 6 for _ in range(6)], (None, None, None))


@st.composite
def later_content(draw):
    """A block after a gap: a valid sample, or a blank block with one value somewhere."""
    if draw(st.booleans()):
        return draw(st.tuples(grid(st.integers(0, 255)), VALID_LABEL))
    image, label = [row[:] for row in BLANK_BLOCK[0]], list(BLANK_BLOCK[1])
    if draw(st.booleans()):
        image[draw(st.integers(0, 5))][draw(st.integers(0, 5))] = draw(CELL)
    else:
        label[draw(st.integers(0, 2))] = draw(CELL)
    return image, tuple(label)


@settings(FUZZ, max_examples=100)
@given(
    before=st.lists(st.tuples(grid(st.integers(0, 255)), VALID_LABEL), max_size=3),
    after=st.lists(st.one_of(st.just(BLANK_BLOCK), later_content()), max_size=3),
)
def test_workbook_with_a_blank_block_between_samples(workdir, before, after):
    """Valid samples, one blank block, then anything: an error naming the blank block's
    range as soon as any later block holds a value, else the samples before it."""
    check_against_specification(workdir / "gap.xlsx", [*before, BLANK_BLOCK, *after])
