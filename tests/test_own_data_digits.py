"""Real data: scikit-learn's bundled 8×8 digits (1,797 samples), written by the test as an
image folder, a CSV file and an .npz archive, read back identically by each loader.
(Training on them from the CLI, to >= 95 %: tests/test_own_data_cli.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnx.datasets import load_data_file

sklearn_datasets = pytest.importorskip("sklearn.datasets")
Image = pytest.importorskip("PIL.Image")


def digits_as_uint8() -> tuple[np.ndarray, np.ndarray]:
    digits = sklearn_datasets.load_digits()  # grey levels 0-16
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    return images, digits.target.astype(np.int64)


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory) -> dict[str, Path]:
    images, labels = digits_as_uint8()
    base = tmp_path_factory.mktemp("digits8x8")
    folder = base / "digits"
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / str(label) / f"{i:04d}.png")
    csv = base / "digits.csv"
    header = "label," + ",".join(f"pixel{k}" for k in range(64))
    rows = [f"{label}," + ",".join(map(str, image.ravel())) for image, label in
            zip(images, labels, strict=True)]  # fmt: skip
    csv.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    npz = base / "digits.npz"
    np.savez(npz, X=images, y=labels)
    return {"folder": folder, "csv": csv, "npz": npz}


@pytest.mark.parametrize("fmt", ["folder", "csv", "npz"])
def test_each_format_reads_the_same_digits(digit_files, fmt):
    images, labels = digits_as_uint8()
    data = load_data_file(digit_files[fmt], cache=False)
    assert data.X.shape == (1797, 1, 8, 8) and data.class_names == [str(d) for d in range(10)]
    order = np.argsort(labels, kind="stable") if fmt == "folder" else np.arange(1797)
    np.testing.assert_array_equal(data.y, labels[order])
    np.testing.assert_array_equal(data.X[:, 0], images[order] / np.float32(255))
