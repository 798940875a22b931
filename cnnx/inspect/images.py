"""Ordinary image files (PNG, JPEG, ...) prepared the way MNIST was made.

MNIST's digits were written in dark ink on light paper, scanned, inverted to light
ink on black, cropped to the ink, scaled to fit a 20×20 box keeping their aspect
ratio (with anti-aliasing) and placed in a 28×28 image so that their centre of mass
sits at the centre. :func:`prepare_image` does the same to a photo or drawing, so a
model trained on MNIST sees what it was trained on; for 6×6 models the digit is
scaled to fit the whole 6×6 image instead. Pillow (the ``images`` extra) is imported
only here, when an image is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnnx.errors import CnnxError, DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGES_EXTRA = 'reading image files needs Pillow: pip install "cnnx[images]"'
INK_THRESHOLD = 0.1  # after normalising, pixels above this count as ink when cropping


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has an image file suffix (PNG, JPEG, BMP, GIF, TIFF, WebP)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _pillow() -> Any:
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise CnnxError(IMAGES_EXTRA) from None
    return Image, ImageOps


def read_grey(path: str | Path) -> np.ndarray:
    """An image file as a ``(H, W) float32`` array in [0, 1], 0 black, 1 white.

    Transparent pixels count as white paper; the EXIF orientation of photos is applied.
    """
    Image, ImageOps = _pillow()
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                image = image.convert("RGBA")
                paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(paper, image)
            if image.mode.startswith("I;16") or image.mode == "I":
                # 16-bit grey (scanners, lab cameras): convert("L") would clip every
                # value above 255 to white, so scale by the bit depth instead.
                values = np.asarray(image, dtype=np.float32)
                wide = image.mode.startswith("I;16") or float(values.max(initial=0)) > 255
                grey = np.clip(values / np.float32(65535 if wide else 255), 0, 1)
            else:
                grey = np.asarray(image.convert("L"), dtype=np.float32) / np.float32(255)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from None
    return grey


def mnist_style(grey: np.ndarray, size: int, box: int | None = None) -> np.ndarray:
    """Turn a grey image into a ``(size, size) float32`` digit, light ink on black.

    Args:
        grey: ``(H, W)`` floats in [0, 1].
        size: side of the result (28 for MNIST models, 6 for the 6×6 models).
        box: side of the box the digit is scaled to fit (default 20 for 28, else ``size``).

    Steps: invert when the paper is light (the border is brighter than mid-grey);
    stretch so the paper is 0 and the darkest ink 1; crop to the ink; scale to fit
    ``box`` keeping the aspect ratio (Lanczos, i.e. anti-aliased); place it so that
    its centre of mass is at the centre of the ``size × size`` image.
    """
    Image, _ = _pillow()
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise DatasetError(f"expected a 2-D image, got shape {grey.shape}")
    if box is None:
        box = 20 if size == 28 else size
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    ink = 1.0 - grey if float(np.median(border)) > 0.5 else grey.copy()
    paper = float(np.median(np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])))
    peak = float(ink.max())
    if peak - paper < 1e-3:
        raise DatasetError("the image is blank: no ink stands out from the paper")
    ink = np.clip((ink - paper) / (peak - paper), 0.0, 1.0).astype(np.float32)
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = Image.fromarray(crop, mode="F").resize((new_w, new_h), Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    total = float(digit.sum())
    cy, cx = (new_h - 1) / 2, (new_w - 1) / 2
    if total > 0:
        ys, xs = np.indices(digit.shape)
        cy, cx = float((ys * digit).sum() / total), float((xs * digit).sum() / total)
    centre = (size - 1) / 2
    top = int(np.clip(round(centre - cy), 0, size - new_h))
    left = int(np.clip(round(centre - cx), 0, size - new_w))
    out = np.zeros((size, size), dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = digit
    return out


def prepare_image(path: str | Path, input_shape: tuple[int, ...]) -> np.ndarray:
    """Read an image file and prepare it for a model with ``input_shape`` ``(1, S, S)``.

    Returns:
        ``(1, S, S) float32`` in [0, 1], light ink on black, as MNIST.
    """
    if len(input_shape) != 3 or input_shape[0] != 1 or input_shape[1] != input_shape[2]:
        raise DatasetError(
            f"image files can be prepared for models with one square grey input channel; "
            f"this model expects {tuple(input_shape)}"
        )
    try:
        return mnist_style(read_grey(path), int(input_shape[1]))[None]
    except DatasetError as exc:
        message = str(exc)
        if not message.startswith(str(path)):
            message = f"{path}: {message}"
        raise DatasetError(message) from None


def prepare_images(paths: list[str | Path], input_shape: tuple[int, ...]) -> np.ndarray:
    """:func:`prepare_image` for each path, stacked to ``(N, 1, S, S) float32``."""
    return np.stack([prepare_image(p, input_shape) for p in paths]).astype(np.float32)
