"""Datasets: MNIST (IDX files), the bundled 6×6 digits workbook, and the 11×11 patterns."""

from cnnx.datasets.idx import read_idx, write_idx
from cnnx.datasets.mnist import load_mnist, mnist_dir

__all__ = ["load_mnist", "mnist_dir", "read_idx", "write_idx"]
