"""Datasets: the bundled 6×6 digits workbook, MNIST (IDX files), and the 11×11 patterns."""

from cnnx.datasets.digits6x6 import DIGITS6X6_CLASSES, load_digits6x6, write_digits6x6
from cnnx.datasets.idx import read_idx, write_idx
from cnnx.datasets.mnist import load_mnist, mnist_dir
from cnnx.datasets.patterns import PATTERN_CLASSES, base_patterns, make_patterns
from cnnx.datasets.split import stratified_split

__all__ = [
    "DIGITS6X6_CLASSES",
    "PATTERN_CLASSES",
    "base_patterns",
    "load_digits6x6",
    "load_mnist",
    "make_patterns",
    "mnist_dir",
    "read_idx",
    "stratified_split",
    "write_digits6x6",
    "write_idx",
]
