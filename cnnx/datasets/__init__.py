"""Datasets: the bundled 6×6 digits workbook, MNIST (IDX files), the 11×11 patterns, and
your own data (image folders, CSV files, NumPy arrays; see :mod:`cnnx.datasets.own`)."""

from cnnx.datasets.digits6x6 import DIGITS6X6_CLASSES, load_digits6x6, write_digits6x6
from cnnx.datasets.idx import read_idx, write_idx
from cnnx.datasets.imagefolder import read_images
from cnnx.datasets.mnist import load_mnist, mnist_dir
from cnnx.datasets.own import (
    FORMATS,
    Normalization,
    OwnDataset,
    SplitData,
    apply_preprocessing,
    detect_format,
    load_data_file,
    load_for_model,
    parse_image_size,
)
from cnnx.datasets.patterns import PATTERN_CLASSES, base_patterns, make_patterns
from cnnx.datasets.split import stratified_split

__all__ = [
    "DIGITS6X6_CLASSES",
    "FORMATS",
    "PATTERN_CLASSES",
    "Normalization",
    "OwnDataset",
    "SplitData",
    "apply_preprocessing",
    "base_patterns",
    "detect_format",
    "load_data_file",
    "load_digits6x6",
    "load_for_model",
    "load_mnist",
    "make_patterns",
    "mnist_dir",
    "parse_image_size",
    "read_idx",
    "read_images",
    "stratified_split",
    "write_digits6x6",
    "write_idx",
]
