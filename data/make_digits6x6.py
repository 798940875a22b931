#!/usr/bin/env python
"""Make cnnx's bundled 6×6 handwritten-digit workbook (digits 1, 2, 3) and its picture.

The course workbook the 6×6 experiments were first run on is not public, so cnnx ships
its own, in the same layout (see ``cnnx/datasets/digits6x6.py``). Each digit is drawn
the way a pen draws it: a few strokes (polylines and Bézier curves) in a unit box,
placed on the 6×6 grid with a random shift, size, slant and small rotation, rendered
by 8×8 supersampling (so partly covered pixels get grey levels), then given a
per-stroke pen pressure, sometimes a break in a stroke, grey-level noise and sometimes
a stray pixel. ``HARD_FRACTION`` of each class can be drawn in a deliberately
ambiguous style (a '1' with a long hook and a foot looks like a '2', a narrow '2' like
a '1', a '3' whose lower bowl ends in a flat foot like a '2'); the shipped data uses
none, because even a few cost SimpleCNN + Adam more than report 000 saw.

The knob values were calibrated with ``data/calibrate_digits6x6.py`` so that report
000's Table 5 protocol shows its qualitative findings (see ``data/README.md``).

The output depends only on the knobs below and the seed (one ``numpy.random.Generator``
drives everything); running the script again writes byte-identical files with the same
numpy and openpyxl versions. Run from the repository root:

    python data/make_digits6x6.py            # writes cnnx/datasets/digits6x6.xlsx
                                             # and docs/digits6x6.png

This script is not needed at run time; ``cnnx.datasets.load_digits6x6`` only reads the
workbook.
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKBOOK = REPO_ROOT / "cnnx" / "datasets" / "digits6x6.xlsx"
DEFAULT_PICTURE = REPO_ROOT / "docs" / "digits6x6.png"

# ------------------------------------------------------------------ difficulty knobs
SEED = 5  # the one seed behind every random choice
N_PER_CLASS = 32  # samples of each digit; 3 * 32 = 96 as in the course file
JITTER_PX = 0.05  # std-dev of the digit centre's shift, in pixels
SIZE_RANGE = (0.9, 1.0)  # digit height as a fraction of the 6-pixel grid
SLANT_STD = 0.03  # std-dev of the shear (x shift per unit of height)
ROTATION_STD_DEG = 1.0  # std-dev of an extra rotation, degrees
HALF_WIDTH_RANGE = (0.33, 0.55)  # stroke half-width, pixels (pen thickness)
PRESSURE_RANGE = (0.4, 1.0)  # ink density of each stroke, fraction of full ink
GAP_PROB = 0.2  # chance that a sample has one break in a stroke
NOISE_STD = 0.03  # std-dev of grey-level noise, fraction of full ink
STRAY_PROB = 0.15  # chance that a sample has one stray pixel
HARD_FRACTION = 0.0  # fraction of each class drawn in an ambiguous style (0.0625: 2 of 32)
# -------------------------------------------------------------------------------------

SUPERSAMPLE = 8
GRID = 6
CLASS_DIGITS = (1, 2, 3)

# Normal handwriting styles of each digit and how often each is used.
STYLES = {
    1: (("stick", 0.40), ("flag", 0.35), ("flag_foot", 0.25)),
    2: (("curved", 0.6), ("angular", 0.4)),
    3: (("round", 0.6), ("flat_top", 0.4)),
}
# Ambiguous styles, drawn for HARD_FRACTION of each class.
HARD_STYLES = {
    1: ("hook_foot",),  # long curved hook and a wide foot: reads like a '2'
    2: ("narrow",),  # squeezed, tiny hook, short base: reads like a '1'
    3: ("flat_foot",),  # lower bowl ends in a flat stroke: reads like a '2'
}


@dataclass(frozen=True)
class Digits:
    """What :func:`generate` draws.

    Attributes:
        pixels: ``(N, 6, 6) uint8`` grey levels, 0 = background, 255 = full ink.
        labels: ``(N,) int64`` class index; 0 is digit 1, 1 digit 2, 2 digit 3.
        styles: the style name each sample was drawn in.
        hard: ``(N,) bool``, True where the style is one of the ambiguous ones.
    """

    pixels: np.ndarray
    labels: np.ndarray
    styles: tuple[str, ...]
    hard: np.ndarray


# ---------------------------------------------------------------------- stroke shapes


def _bezier(*control: tuple[float, float], steps: int = 12) -> np.ndarray:
    """Points ``(steps + 1, 2)`` along a Bézier curve through the control points."""
    pts = np.asarray(control, dtype=np.float64)
    t = np.linspace(0.0, 1.0, steps + 1)[:, None]
    n = len(pts) - 1
    out = np.zeros((steps + 1, 2))
    for k, p in enumerate(pts):
        out += math.comb(n, k) * (1 - t) ** (n - k) * t**k * p
    return out


def _line(*points: tuple[float, float]) -> np.ndarray:
    return np.asarray(points, dtype=np.float64)


def _strokes(digit: int, style: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Polylines in a unit box (x to the right, y downwards) for one digit.

    Small random changes to the control points vary the shape within a style.
    """

    def u(lo: float, hi: float) -> float:
        return float(lo + (hi - lo) * rng.random())

    if digit == 1:
        top = (0.5 + u(-0.05, 0.05), 0.0)
        stem = _line(top, (0.5 + u(-0.05, 0.05), 1.0))
        if style == "stick":
            return [stem]
        if style == "flag":
            return [stem, _line(top, (top[0] - u(0.2, 0.35), u(0.2, 0.35)))]
        if style == "flag_foot":
            return [
                stem,
                _line(top, (top[0] - u(0.2, 0.3), u(0.2, 0.3))),
                _line((u(0.15, 0.3), 1.0), (u(0.7, 0.85), 1.0)),
            ]
        if style == "hook_foot":
            hook = _bezier((u(0.0, 0.1), u(0.3, 0.45)), (u(0.1, 0.25), 0.0), top)
            return [stem, hook, _line((u(0.0, 0.1), 1.0), (u(0.9, 1.0), 1.0))]
    if digit == 2:
        if style == "curved":
            end = (u(0.75, 0.9), u(0.3, 0.45))
            bowl = _bezier(
                (u(0.05, 0.2), u(0.2, 0.35)), (u(0.1, 0.2), -0.1), (u(0.9, 1.05), -0.1), end
            )
            foot = (u(0.0, 0.1), 1.0)
            return [bowl, _line(end, foot), _line(foot, (u(0.85, 1.0), 1.0))]
        if style == "angular":
            top_right = (u(0.8, 0.95), u(0.05, 0.2))
            foot = (u(0.0, 0.15), 1.0)
            return [
                _line((u(0.05, 0.2), u(0.15, 0.3)), (0.5, 0.0), top_right),
                _line(top_right, foot),
                _line(foot, (u(0.85, 1.0), 1.0)),
            ]
        if style == "narrow":
            top = (u(0.5, 0.6), 0.0)
            foot = (u(0.35, 0.45), 1.0)
            return [
                _line((u(0.3, 0.4), u(0.15, 0.25)), top, (u(0.6, 0.7), u(0.1, 0.2))),
                _line((u(0.6, 0.7), u(0.1, 0.2)), foot),
                _line(foot, (u(0.6, 0.7), 1.0)),
            ]
    if digit == 3:
        waist = (u(0.35, 0.5), u(0.45, 0.55))
        lower = _bezier(
            waist,
            (u(1.0, 1.15), u(0.4, 0.55)),
            (u(1.0, 1.1), u(1.0, 1.15)),
            (u(0.0, 0.15), u(0.85, 0.95)),
        )
        if style == "round":
            upper = _bezier(
                (u(0.05, 0.2), u(0.1, 0.2)), (u(0.35, 0.5), -0.1), (u(1.0, 1.1), u(0.0, 0.1)), waist
            )
            return [upper, lower]
        if style == "flat_top":
            corner = (u(0.8, 0.95), 0.0)
            return [_line((u(0.05, 0.15), 0.0), corner, waist), lower]
        if style == "flat_foot":
            upper = _bezier(
                (u(0.05, 0.2), u(0.1, 0.2)), (u(0.35, 0.5), -0.1), (u(1.0, 1.1), u(0.0, 0.1)), waist
            )
            right = (u(0.85, 1.0), u(0.65, 0.75))
            foot = (u(0.0, 0.1), 1.0)
            return [upper, _line(waist, right, foot), _line(foot, (u(0.6, 0.8), 1.0))]
    raise ValueError(f"no style {style!r} for digit {digit}")


# -------------------------------------------------------------------------- rendering


def _place(strokes: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Map unit-box strokes onto the 6×6 grid (pixel units, (0, 0) = top-left corner)."""
    height = GRID * (SIZE_RANGE[0] + (SIZE_RANGE[1] - SIZE_RANGE[0]) * rng.random())
    width = height * (0.55 + 0.15 * rng.random())
    slant = SLANT_STD * rng.standard_normal()
    angle = math.radians(ROTATION_STD_DEG * rng.standard_normal())
    centre = GRID / 2 + JITTER_PX * rng.standard_normal(2)
    cos, sin = math.cos(angle), math.sin(angle)
    placed = []
    for stroke in strokes:
        x = (stroke[:, 0] - 0.5) * width
        y = (stroke[:, 1] - 0.5) * height
        x = x - slant * y  # a forward slant moves the top to the right (y grows downwards)
        placed.append(
            np.stack([centre[0] + cos * x - sin * y, centre[1] + sin * x + cos * y], axis=1)
        )
    return placed


def _distance_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance from each of ``points (P, 2)`` to the polyline ``(K, 2)``: ``(P,)``."""
    a = polyline[:-1][None]  # (1, K-1, 2)
    b = polyline[1:][None]
    ab = b - a
    ap = points[:, None, :] - a
    length2 = np.maximum((ab * ab).sum(-1), 1e-12)
    t = np.clip((ap * ab).sum(-1) / length2, 0.0, 1.0)
    nearest = a + t[..., None] * ab
    return np.sqrt(((points[:, None, :] - nearest) ** 2).sum(-1)).min(axis=1)


def _render(strokes: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Draw placed strokes; returns ``(6, 6) float64`` ink in [0, 1] before noise."""
    n = GRID * SUPERSAMPLE
    centres = (np.arange(n) + 0.5) / SUPERSAMPLE
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    points = np.stack([xx.ravel(), yy.ravel()], axis=1)
    half_width = HALF_WIDTH_RANGE[0] + (HALF_WIDTH_RANGE[1] - HALF_WIDTH_RANGE[0]) * rng.random()
    ink = np.zeros(n * n)
    for stroke in strokes:
        pressure = PRESSURE_RANGE[0] + (PRESSURE_RANGE[1] - PRESSURE_RANGE[0]) * rng.random()
        covered = _distance_to_polyline(points, stroke) <= half_width
        ink = np.maximum(ink, covered * pressure)
    if rng.random() < GAP_PROB:
        # Lift the pen for a moment: erase a disc centred on a random point of a stroke.
        stroke = strokes[int(rng.integers(len(strokes)))]
        k = int(rng.integers(len(stroke) - 1))
        centre = stroke[k] + rng.random() * (stroke[k + 1] - stroke[k])
        radius = 0.45 + 0.3 * rng.random()
        ink[np.hypot(points[:, 0] - centre[0], points[:, 1] - centre[1]) <= radius] = 0.0
    return ink.reshape(GRID, SUPERSAMPLE, GRID, SUPERSAMPLE).mean(axis=(1, 3))


def _draw(digit: int, style: str, rng: np.random.Generator) -> np.ndarray:
    image = _render(_place(_strokes(digit, style, rng), rng), rng)
    image = image + NOISE_STD * rng.standard_normal(image.shape)
    if rng.random() < STRAY_PROB:
        r, c = rng.integers(GRID, size=2)
        image[r, c] = max(image[r, c], 0.3 + 0.6 * rng.random())
    return np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _pick_style(digit: int, rng: np.random.Generator) -> str:
    names = [name for name, _ in STYLES[digit]]
    weights = np.array([w for _, w in STYLES[digit]])
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def generate(seed: int = SEED, n_per_class: int = N_PER_CLASS) -> Digits:
    """Draw the data set: ``n_per_class`` samples of each digit, in shuffled order."""
    rng = np.random.default_rng(seed)
    n_hard = round(HARD_FRACTION * n_per_class)
    plan: list[tuple[int, str, bool]] = []
    for digit in CLASS_DIGITS:
        hard_slots = set(rng.choice(n_per_class, size=n_hard, replace=False).tolist())
        for k in range(n_per_class):
            if k in hard_slots:
                hard_styles = HARD_STYLES[digit]
                plan.append((digit, hard_styles[int(rng.integers(len(hard_styles)))], True))
            else:
                plan.append((digit, _pick_style(digit, rng), False))
    order = rng.permutation(len(plan))
    plan = [plan[k] for k in order]
    pixels = np.stack([_draw(digit, style, rng) for digit, style, _ in plan])
    labels = np.array([CLASS_DIGITS.index(digit) for digit, _, _ in plan], dtype=np.int64)
    return Digits(
        pixels=pixels,
        labels=labels,
        styles=tuple(style for _, style, _ in plan),
        hard=np.array([hard for _, _, hard in plan], dtype=bool),
    )


# ---------------------------------------------------------------------------- picture

# 3×5 bitmap glyphs for the digits, one string per row.
_GLYPHS = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", "..#", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
}


def _stamp(
    canvas: np.ndarray, text: str, top: int, left: int, scale: int, colour: tuple[int, int, int]
) -> None:
    for n, ch in enumerate(text):
        glyph = np.array([[c == "#" for c in row] for row in _GLYPHS[ch]])
        block = np.kron(glyph, np.ones((scale, scale), dtype=bool))
        x0 = left + n * 4 * scale
        region = canvas[top : top + block.shape[0], x0 : x0 + block.shape[1]]
        region[block] = colour


def render_picture(digits: Digits) -> np.ndarray:
    """All samples grouped by class, each under its column index in the sheet.

    One panel per class (8 × 4 digits), headed by a large class numeral; ink is dark on
    white; samples drawn in an ambiguous style get a red frame. Returns ``(H, W, 3)
    uint8`` RGB.
    """
    cell, pad, per_row = 7, 4, 8  # 6×6 digit magnified 7×
    tile_w = GRID * cell + 2 * pad
    tile_h = GRID * cell + 2 * pad + 14
    n_classes = len(CLASS_DIGITS)
    rows = max(math.ceil(int((digits.labels == k).sum()) / per_row) for k in range(n_classes))
    header, gap = 40, 24
    width = n_classes * per_row * tile_w + (n_classes - 1) * gap + 2 * pad
    height = header + rows * tile_h + pad
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for k, digit in enumerate(CLASS_DIGITS):
        left0 = pad + k * (per_row * tile_w + gap)
        _stamp(canvas, str(digit), 6, left0 + per_row * tile_w // 2 - 9, 6, (0, 0, 0))
        for slot, idx in enumerate(np.flatnonzero(digits.labels == k)):
            top = header + (slot // per_row) * tile_h
            left = left0 + (slot % per_row) * tile_w
            grey = 255 - np.kron(digits.pixels[idx], np.ones((cell, cell), dtype=np.uint8))
            y0, x0 = top + pad, left + pad
            canvas[y0 : y0 + GRID * cell, x0 : x0 + GRID * cell] = grey[..., None]
            frame = (220, 0, 0) if digits.hard[idx] else (170, 170, 170)
            canvas[y0 - 1, x0 - 1 : x0 + GRID * cell + 1] = frame
            canvas[y0 + GRID * cell, x0 - 1 : x0 + GRID * cell + 1] = frame
            canvas[y0 - 1 : y0 + GRID * cell + 1, x0 - 1] = frame
            canvas[y0 - 1 : y0 + GRID * cell + 1, x0 + GRID * cell] = frame
            _stamp(canvas, str(int(idx)), y0 + GRID * cell + 4, x0, 2, (90, 90, 90))
    return canvas


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write ``(H, W, 3) uint8`` as an RGB PNG (zlib + struct, no imaging library)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(height))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(png)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_WORKBOOK,
        help="workbook to write (default: %(default)s)",
    )
    parser.add_argument(
        "--png", type=Path, default=DEFAULT_PICTURE, help="picture to write (default: %(default)s)"
    )
    parser.add_argument("--no-png", action="store_true", help="do not write the picture")
    parser.add_argument("--seed", type=int, default=SEED, help="default: %(default)s")
    args = parser.parse_args(argv)

    # Write with this checkout's cnnx, not some other installed version.
    sys.path.insert(0, str(REPO_ROOT))
    from cnnx.datasets.digits6x6 import write_digits6x6

    digits = generate(seed=args.seed)
    write_digits6x6(args.out, digits.pixels, digits.labels)
    print(
        f"wrote {args.out} ({len(digits.labels)} samples, "
        f"{int(digits.hard.sum())} in an ambiguous style)"
    )
    if not args.no_png:
        write_png(args.png, render_picture(digits))
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
