"""Own data: image folders, CSV files and NumPy arrays round-trip, and every bad input is
a one-line DatasetError naming the file and the row, sample or pixel."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnx.datasets import (
    Normalization,
    apply_preprocessing,
    load_data_file,
    load_for_model,
    parse_image_size,
    stratified_split,
)
from cnnx.datasets.imagefolder import cache_path, read_images
from cnnx.errors import DatasetError


def grey_images(n: int, h: int = 5, w: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def write_folder(root: Path, images: np.ndarray, labels, names, ext: str = ".png") -> Path:
    """root/<names[label]>/<i>.<ext>, one file per image (written by Pillow directly)."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}{ext}")
    return root


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------ image folders


def test_folder_round_trip_png_greyscale(tmp_path):
    images = grey_images(9)
    labels = np.array([0, 1, 2] * 3)
    root = write_folder(tmp_path / "data", images, labels, ["cat", "dog", "emu"])
    data = load_data_file(root)
    assert data.format == "folder"
    assert data.class_names == ["cat", "dog", "emu"]
    assert data.X.dtype == np.float32 and data.X.shape == (9, 1, 5, 7)
    assert data.y.dtype == np.int64
    # Files are read class by class in name order: cat 000, 003, 006, then dog ...
    order = np.argsort(labels, kind="stable")
    np.testing.assert_array_equal(data.y, labels[order])
    np.testing.assert_array_equal(data.X[:, 0], images[order] / np.float32(255))
    assert data.scaling == "8-bit images divided by 255"
    assert data.options == {"channels": 1, "image_size": [5, 7]}
    assert data.sample_names[:2] == [str(Path("cat") / "000.png"), str(Path("cat") / "003.png")]
    assert data.notes == []


@pytest.mark.parametrize("ext", [".bmp", ".gif"])
def test_folder_round_trip_bmp_and_gif(tmp_path, ext):
    images = grey_images(4)
    root = write_folder(tmp_path / "d", images, [0, 0, 1, 1], ["a", "b"], ext)
    data = load_data_file(root)
    np.testing.assert_array_equal(data.X[:, 0], images / np.float32(255))
    assert data.X.shape[1] == 1


def test_gif_first_frame(tmp_path):
    first, second = grey_images(2)
    folder = tmp_path / "d" / "only"
    folder.mkdir(parents=True)
    frames = [Image.fromarray(first), Image.fromarray(second)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "d" / "other").mkdir()
    Image.fromarray(second).save(tmp_path / "d" / "other" / "x.png")
    data = load_data_file(tmp_path / "d")
    np.testing.assert_array_equal(data.X[0, 0], first / np.float32(255))


def test_folder_colour_and_channel_choice(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, size=(2, 4, 4, 3), dtype=np.uint8)
    grey = grey_images(2, 4, 4)
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(2):
        Image.fromarray(rgb[i]).save(root / "a" / f"{i}.png")
        Image.fromarray(grey[i]).save(root / "b" / f"{i}.png")
    data = load_data_file(root)  # one colour image makes every image RGB
    assert data.X.shape == (4, 3, 4, 4)
    np.testing.assert_array_equal(data.X[0], rgb[0].transpose(2, 0, 1) / np.float32(255))
    np.testing.assert_array_equal(data.X[2, 1], grey[0] / np.float32(255))  # grey repeated
    as_grey = load_data_file(root, channels=1)
    expected = np.asarray(Image.fromarray(rgb[1]).convert("L")) / np.float32(255)
    np.testing.assert_array_equal(as_grey.X[1, 0], expected)


def test_folder_rgba_drops_alpha(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 256, size=(3, 3, 4), dtype=np.uint8)
    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "b").mkdir()
    Image.fromarray(rgba).save(tmp_path / "d" / "a" / "x.png")
    Image.fromarray(rgba).save(tmp_path / "d" / "b" / "x.png")
    data = load_data_file(tmp_path / "d")
    np.testing.assert_array_equal(data.X[0], rgba[..., :3].transpose(2, 0, 1) / np.float32(255))


def test_folder_16_bit_png(tmp_path):
    wide = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    for name in ("a", "b"):
        (tmp_path / "d" / name).mkdir(parents=True)
        Image.fromarray(wide).save(tmp_path / "d" / name / "x.png")
    data = load_data_file(tmp_path / "d")
    assert data.scaling == "16-bit images divided by 65535"
    np.testing.assert_allclose(data.X[0, 0], wide / 65535, rtol=1e-6)


def test_folder_jpeg_photo_orientation_and_resize(tmp_path):
    # A "portrait" phone photo: stored 60 wide × 40 high with EXIF orientation 6 (rotate).
    photo = np.zeros((40, 60, 3), dtype=np.uint8)
    photo[:, :30] = 255  # left half white: after rotating 90° clockwise, the top is white
    for name in ("a", "b"):
        (tmp_path / "d" / name).mkdir(parents=True)
        image = Image.fromarray(photo)
        exif = image.getexif()
        exif[0x0112] = 6
        image.save(tmp_path / "d" / name / "p.jpg", exif=exif, quality=95)
    data = load_data_file(tmp_path / "d")
    assert data.image_shape == (3, 60, 40)  # height × width as a viewer shows it
    small = load_data_file(tmp_path / "d", image_size="12x8", channels=1)
    assert small.image_shape == (1, 12, 8)
    assert small.X[0, 0, :4].mean() > 0.9 and small.X[0, 0, -4:].mean() < 0.1
    assert "2 of 2 images resized to 12×8" in small.notes


def test_folder_most_common_size_and_same_shape_resized(tmp_path):
    images = grey_images(4, 6, 6)
    root = write_folder(tmp_path / "d", images, [0, 0, 1, 1], ["a", "b"])
    Image.fromarray(grey_images(1, 12, 12)[0]).save(root / "b" / "big.png")
    data = load_data_file(root)
    assert data.image_shape == (1, 6, 6)
    assert "1 of 5 images resized to 6×6" in data.notes


def test_folder_mixed_shapes_need_image_size(tmp_path):
    root = write_folder(tmp_path / "d", grey_images(4, 6, 6), [0, 0, 1, 1], ["a", "b"])
    Image.fromarray(grey_images(1, 6, 9)[0]).save(root / "b" / "wide.png")
    with pytest.raises(DatasetError) as exc:
        load_data_file(root)
    message = one_line(exc)
    assert "wide.png" in message and "6×9" in message and "--image-size" in message
    data = load_data_file(root, image_size=6)
    assert len(data.X) == 5 and "1 of 5 images resized to 6×6" in data.notes
    skipped = load_data_file(root, skip_bad=True)
    assert len(skipped.X) == 4 and skipped.skipped == [str(Path("b") / "wide.png")]


def test_folder_given_splits_nested_and_ignored_files(tmp_path):
    images = grey_images(10)
    root = tmp_path / "d"
    write_folder(root / "train", images[:6], [0, 1, 0, 1, 0, 1], ["no", "yes"])
    write_folder(root / "test", images[6:], [0, 1, 1, 1], ["no", "yes"])
    (root / "train" / "yes" / "more").mkdir()
    Image.fromarray(images[0]).save(root / "train" / "yes" / "more" / "deep.png")
    (root / "train" / "no" / "notes.txt").write_text("hello")
    (root / "train" / "no" / ".DS_Store").write_bytes(b"\0")
    data = load_data_file(root)
    assert data.class_names == ["no", "yes"]
    assert len(data.X) == 7 and data.test_name == "test" and len(data.test[0]) == 4
    np.testing.assert_array_equal(data.test[1], [0, 1, 1, 1])
    assert any("ignored 1 files that are not images" in n and "notes.txt" in n for n in data.notes)
    split = data.split()
    assert split.val_name == "test" and len(split.val[1]) == 4
    drawn = data.split(val_fraction=0.25)
    assert drawn.val_name == "val" and len(drawn.train[1]) + len(drawn.val[1]) == 7


def test_folder_test_class_not_in_training(tmp_path):
    root = tmp_path / "d"
    write_folder(root / "train", grey_images(2), [0, 1], ["a", "b"])
    write_folder(root / "test", grey_images(1), [0], ["zebra"])
    with pytest.raises(DatasetError, match=r"zebra.*not among the training classes"):
        load_data_file(root)


def test_folder_unreadable_and_truncated_images(tmp_path):
    root = write_folder(tmp_path / "d", grey_images(4), [0, 0, 1, 1], ["a", "b"])
    (root / "a" / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(DatasetError) as exc:
        load_data_file(root)
    message = one_line(exc)
    assert str(root / "a" / "broken.png") in message and "cannot be read as an image" in message
    (root / "a" / "broken.png").unlink()
    good = (root / "b" / "003.png").read_bytes()
    (root / "b" / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match=r"cut\.png: cannot be read as an image"):
        load_data_file(root)
    (root / "a" / "broken.png").write_bytes(b"junk")
    data = load_data_file(root, skip_bad=True)
    assert len(data.X) == 4
    assert sorted(data.skipped) == [str(Path("a") / "broken.png"), str(Path("b") / "cut.png")]
    assert data.notes[0].startswith("skipped 2 bad files: ")


def test_folder_empty_class_and_empty_dataset(tmp_path):
    root = write_folder(tmp_path / "d", grey_images(2), [0, 1], ["a", "b"])
    (root / "c").mkdir()
    (root / "c" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError) as exc:
        load_data_file(root)
    assert str(root / "c") in one_line(exc) and "no images in this class folder" in str(exc.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty dataset"):
        load_data_file(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_data_file(tmp_path / "missing")


def test_folder_class_with_only_bad_images_is_an_error_even_with_skip_bad(tmp_path):
    root = write_folder(tmp_path / "d", grey_images(2), [0, 0], ["a"])
    (root / "b").mkdir()
    (root / "b" / "x.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"none of the images of class 'b' could be used"):
        load_data_file(root, skip_bad=True)


def test_folder_of_loose_images_loads_unlabelled_for_prediction(tmp_path):
    images = grey_images(3)
    (tmp_path / "d").mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / "d" / f"{i}.png")
    with pytest.raises(DatasetError, match="3 images but no class folders"):
        load_data_file(tmp_path / "d")
    data = load_data_file(tmp_path / "d", require_labels=False)
    assert data.y is None
    np.testing.assert_array_equal(data.X[:, 0], images / np.float32(255))


def test_folder_without_pillow_names_the_extra(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "d", grey_images(2), [0, 1], ["a", "b"])
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DatasetError) as exc:
        load_data_file(root)
    assert one_line(exc) == 'reading image folders needs Pillow: pip install "cnnx[images]"'


def test_folder_cache_reused_while_files_unchanged(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNX_DATA_DIR", raising=False)
    root = write_folder(tmp_path / "d", grey_images(6), [0, 1] * 3, ["a", "b"])
    first = load_data_file(root, cache=True)
    path = cache_path(root)
    assert path == tmp_path / ".d.cnnx-cache.npz" and path.is_file()
    assert first.notes[-1] == f"cached the decoded images in {path}"
    second = load_data_file(root, cache=True)
    assert second.notes[-1] == f"read from the cache {path}"
    np.testing.assert_array_equal(second.X, first.X)
    np.testing.assert_array_equal(second.y, first.y)
    # A changed file (new size and time) makes the cache stale: it is rebuilt.
    changed = grey_images(1, seed=9)[0]
    Image.fromarray(changed).save(root / "a" / "000.png", compress_level=0)
    os.utime(root / "a" / "000.png", ns=(1, 1))
    third = load_data_file(root, cache=True)
    assert third.notes[-1].startswith("cached")
    np.testing.assert_array_equal(third.X[0, 0], changed / np.float32(255))
    # Other options are another key; no temporary files are left behind.
    assert load_data_file(root, cache=True, channels=3).X.shape[1] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.cnnx-cache.npz", "d"]
    # A damaged cache is rebuilt, not trusted.
    path.write_bytes(b"garbage")
    assert load_data_file(root, cache=True).notes[-1].startswith("cached")


def test_folder_cache_under_cnnx_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNX_DATA_DIR", str(tmp_path / "cache"))
    root = write_folder(tmp_path / "d", grey_images(2), [0, 1], ["a", "b"])
    load_data_file(root, cache=True)
    (cached,) = (tmp_path / "cache" / "folders").iterdir()
    assert cached.name.startswith("d-") and cached.suffix == ".npz"
    assert not (tmp_path / ".d.cnnx-cache.npz").exists()
    assert load_data_file(root).notes == []  # two images: not cached by default


def test_read_images_for_prediction(tmp_path):
    images = grey_images(2, 10, 10)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(paths[-1])
    X = read_images(paths, channels=1, image_size=10)
    np.testing.assert_array_equal(X[:, 0], images / np.float32(255))
    assert read_images(paths, channels=3, image_size="5x4").shape == (2, 3, 5, 4)
    with pytest.raises(DatasetError, match="no such file"):
        read_images([tmp_path / "nope.png"], image_size=4)


# ------------------------------------------------------------------------------- CSV


def write_csv(path: Path, rows, header=None, delimiter=",") -> Path:
    lines = [] if header is None else [delimiter.join(header)]
    lines += [delimiter.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_kaggle_layout_round_trip(tmp_path):
    images = grey_images(6, 4, 4)
    labels = np.array([3, 1, 2, 3, 1, 2])
    header = ["label"] + [f"pixel{k}" for k in range(16)]
    rows = [[label, *image.ravel()] for label, image in zip(labels, images, strict=True)]
    data = load_data_file(write_csv(tmp_path / "train.csv", rows, header))
    assert data.format == "csv" and data.class_names == ["1", "2", "3"]
    np.testing.assert_array_equal(data.y, labels - 1)
    np.testing.assert_array_equal(data.X[:, 0], images / np.float32(255))
    assert data.scaling == "integers 0-255 divided by 255"
    assert data.options["label_column"] == "label"
    # Kaggle's test.csv: the same without the label column, for prediction.
    test = write_csv(tmp_path / "test.csv", [image.ravel() for image in images], header[1:])
    unlabelled = load_data_file(test, require_labels=False)
    assert unlabelled.y is None
    np.testing.assert_array_equal(unlabelled.X, data.X)
    with pytest.raises(DatasetError, match="the header has no label column"):
        load_data_file(test)


def test_csv_headerless_label_first_last_and_named(tmp_path):
    images = np.random.default_rng(3).random((4, 2, 3)).round(3)
    labels = ["cat", "dog", "cat", "dog"]
    last = [[*image.ravel(), label] for label, image in zip(labels, images, strict=True)]
    data = load_data_file(
        write_csv(tmp_path / "a.csv", last), label_column="last", image_size=(2, 3)
    )
    assert data.class_names == ["cat", "dog"] and data.y.tolist() == [0, 1, 0, 1]
    assert data.scaling == "floats kept as they are"
    np.testing.assert_array_equal(data.X[:, 0], images.astype(np.float32))
    first = [[label, *image.ravel()] for label, image in zip(labels, images, strict=True)]
    data = load_data_file(write_csv(tmp_path / "b.csv", first, delimiter=";"), image_size="2x3")
    assert data.y.tolist() == [0, 1, 0, 1]
    middle = [[*image.ravel()[:2], label, *image.ravel()[2:]] for label, image in
              zip(labels, images, strict=True)]  # fmt: skip
    header = ["p0", "p1", "kind", "p2", "p3", "p4", "p5"]
    data = load_data_file(
        write_csv(tmp_path / "c.csv", middle, header), label_column="Kind", image_size="2x3"
    )
    np.testing.assert_array_equal(data.X[:, 0], images.astype(np.float32))


def test_csv_colour_channels_last(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 256, size=(3, 2, 2, 3)).astype(np.uint8)
    rows = [[k, *image.ravel()] for k, image in enumerate(rgb)]
    data = load_data_file(write_csv(tmp_path / "c.csv", rows), channels_last=True)
    assert data.image_shape == (3, 2, 2)
    np.testing.assert_array_equal(data.X, rgb.transpose(0, 3, 1, 2) / np.float32(255))
    planes = load_data_file(tmp_path / "c.csv")  # the same numbers read channel by channel
    np.testing.assert_array_equal(
        planes.X, rgb.reshape(3, 3, 2, 2).astype(np.float32) / np.float32(255)
    )


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("1,0,0,0", r"x\.csv: row 3 has 4 values; the header has 5$"),
        ("1,0,0,abc,0", r"x\.csv: row 3, column 4 \('p2'\) is 'abc', not a number$"),
        ("1,0,,0,0", r"x\.csv: row 3, column 3 \('p1'\) is empty$"),
        ("1,0,256,0,0", r"x\.csv: row 3, column 3 \('p1'\) is 256; integer pixels must be 0-255"),
        ("1,0,0.5,nan,0", r"x\.csv: row 3, column 4 \('p2'\) is nan; pixels must be finite"),
        ("2.5,0,0,0,0", r"x\.csv: row 3: label '2\.5' is not an integer"),
        ("cat,0,0,0,0", r"row 3: label 'cat' is a name but row 2's label '1' is an integer"),
        (",0,0,0,0", r"x\.csv: row 3: the label is empty"),
    ],
)
def test_csv_bad_rows_name_row_and_column(tmp_path, row, expected):
    path = tmp_path / "x.csv"
    path.write_text("label,p0,p1,p2,p3\n1,0,0,0,0\n" + row + "\n2,1,1,1,1\n", encoding="utf-8")
    with pytest.raises(DatasetError) as exc:
        load_data_file(path)
    assert re.search(expected, one_line(exc))


def test_csv_skip_bad_counts_and_names_rows(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("label,p0,p1,p2,p3\n1,0,0,0,0\n1,0,0\n2,x,0,0,0\n2,1,1,1,1\n", encoding="utf-8")
    data = load_data_file(path, skip_bad=True)
    assert len(data.X) == 2 and data.skipped == ["row 3", "row 4"]
    assert data.notes[0].startswith("skipped 2 bad rows: row 3, row 4 (first: row 3: has 3")


def test_csv_other_bad_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"empty\.csv: the file is empty"):
        load_data_file(empty)
    header_only = write_csv(tmp_path / "h.csv", [], ["label", "p0", "p1"])
    with pytest.raises(DatasetError, match="a header row but no data rows"):
        load_data_file(header_only)
    odd = write_csv(tmp_path / "odd.csv", [[1, 0, 0, 0, 0, 0], [2, 1, 1, 1, 1, 1]])
    with pytest.raises(DatasetError, match="5 pixel values, not a square number"):
        load_data_file(odd)
    assert load_data_file(odd, image_size="1x5").image_shape == (1, 1, 5)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"label,p0\n1,\xff\xfe\n")
    with pytest.raises(DatasetError, match="not a UTF-8 text file"):
        load_data_file(binary)
    with pytest.raises(DatasetError, match="no column named 'kind'"):
        load_data_file(
            write_csv(tmp_path / "n.csv", [[1, 0]], ["label", "p0"]), label_column="kind"
        )


def test_csv_integer_zero_one_pixels_get_a_note(tmp_path):
    data = load_data_file(write_csv(tmp_path / "b.csv", [[0, 1, 0, 0, 1], [1, 0, 1, 1, 0]]))
    assert data.X.max() == np.float32(1 / 255)
    assert any("every pixel is 0 or 1" in note for note in data.notes)


def test_labels_must_be_among_given_class_names(tmp_path):
    path = write_csv(tmp_path / "t.csv", [[7, 0, 0, 0, 0], [3, 1, 1, 1, 1]])
    data = load_data_file(path, class_names=["3", "5", "7"])
    assert data.y.tolist() == [2, 0]
    with pytest.raises(
        DatasetError, match=r"row 1: label '7' is not one of the 2 classes \(3, 5\)"
    ):
        load_data_file(path, class_names=["3", "5"])


# ------------------------------------------------------------------------------ NumPy


def test_npz_shapes_round_trip(tmp_path):
    images = grey_images(5, 4, 6)
    labels = np.array([0, 2, 2, 0, 2])
    np.savez(tmp_path / "a.npz", X=images, y=labels)
    data = load_data_file(tmp_path / "a.npz")
    assert data.format == "npz" and data.class_names == ["0", "2"]
    np.testing.assert_array_equal(data.X[:, 0], images / np.float32(255))
    floats = np.random.default_rng(5).standard_normal((5, 3, 4, 6)).astype(np.float32)
    np.savez(tmp_path / "b.npz", X=floats, y=labels.astype(np.float64))
    np.testing.assert_array_equal(load_data_file(tmp_path / "b.npz").X, floats)
    np.savez(tmp_path / "c.npz", X=floats.transpose(0, 2, 3, 1), y=labels)
    np.testing.assert_array_equal(load_data_file(tmp_path / "c.npz", channels_last=True).X, floats)
    np.savez(tmp_path / "d.npz", X=images.reshape(5, -1)[:, :16], y=np.array(list("abcab")))
    flat = load_data_file(tmp_path / "d.npz")
    assert flat.image_shape == (1, 4, 4) and flat.class_names == ["a", "b", "c"]


def test_npz_train_test_keys(tmp_path):
    images = grey_images(6)
    np.savez(
        tmp_path / "k.npz", x_train=images[:4], y_train=[1, 2, 1, 2], x_test=images[4:],
        y_test=[2, 2],
    )  # fmt: skip
    data = load_data_file(tmp_path / "k.npz")
    assert len(data.X) == 4 and data.test[1].tolist() == [1, 1]
    assert data.split().val_name == "test"


def test_npy_pairs(tmp_path):
    images = grey_images(4)
    np.save(tmp_path / "X_train.npy", images)
    np.save(tmp_path / "y_train.npy", np.array([0, 1, 0, 1]))
    data = load_data_file(tmp_path / "X_train.npy")
    assert data.format == "npy" and data.y.tolist() == [0, 1, 0, 1]
    assert data.notes[0] == f"labels from {tmp_path / 'y_train.npy'}"
    np.save(tmp_path / "train_images.npy", images)
    np.save(tmp_path / "train_labels.npy", np.array(["b", "a", "b", "a"]))
    assert load_data_file(tmp_path / "train_images.npy").y.tolist() == [1, 0, 1, 0]
    np.save(tmp_path / "alone.npy", images)
    with pytest.raises(DatasetError, match="no labels file beside it"):
        load_data_file(tmp_path / "alone.npy")
    assert load_data_file(tmp_path / "alone.npy", require_labels=False).y is None
    explicit = load_data_file(tmp_path / "alone.npy", labels=tmp_path / "y_train.npy")
    assert explicit.y.tolist() == [0, 1, 0, 1]


def test_arrays_are_never_unpickled(tmp_path):
    objects = np.empty(2, dtype=object)
    objects[:] = [[1], [2]]
    np.savez(tmp_path / "p.npz", X=grey_images(2), y=objects)
    with pytest.raises(DatasetError, match="'y' holds Python objects; cnnx never unpickles"):
        load_data_file(tmp_path / "p.npz")
    np.save(tmp_path / "X.npy", objects, allow_pickle=True)
    with pytest.raises(DatasetError, match="holds Python objects"):
        load_data_file(tmp_path / "X.npy")


@pytest.mark.parametrize(
    ("arrays", "options", "expected"),
    [
        ({"images": np.zeros((2, 3, 3))}, {}, r"holds the arrays images; expected X and y"),
        ({"X": np.zeros((2, 3, 3)), "y": [1, 2, 3]}, {}, r"y has shape \(3,\); expected \(2,\)"),
        ({"X": np.zeros((2, 5, 5, 3)), "y": [0, 1]}, {}, r"looks like \(N, H, W, C\)"),
        ({"X": np.full((2, 2, 2), 300), "y": [0, 1]}, {}, r"X\[0, 0, 0, 0\] is 300; integer"),
        ({"X": np.array([[[0, np.inf]]]), "y": [0]}, {}, r"X\[0, 0, 0, 1\] is inf"),
        ({"X": np.zeros((0, 2, 2)), "y": []}, {}, r"holds no samples \(empty dataset\)"),
        ({"X": np.zeros((2, 2, 2)), "y": [0.5, 1]}, {}, r"y\[0\]: label 0\.5 is not an integer"),
        ({"X": np.zeros((2, 5)), "y": [0, 1]}, {}, r"rows have 5 pixels, not a square number"),
        ({"X": np.zeros((2, 2, 2)), "y": [0, 1]}, {"image_size": 3}, r"are 2×2, not the 3×3"),
        ({"X": np.array([["a"]]), "y": [0]}, {}, r"X holds <U1 values; expected numbers"),
    ],
)
def test_npz_bad_arrays(tmp_path, arrays, options, expected):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError) as exc:
        load_data_file(tmp_path / "bad.npz", **options)
    message = one_line(exc)
    assert message.startswith(str(tmp_path / "bad.npz"))
    assert re.search(expected, message)


def test_npz_not_an_archive_and_skip_bad(tmp_path):
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DatasetError, match=r"not a readable \.npz archive"):
        load_data_file(tmp_path / "z.npz")
    X = np.zeros((3, 2, 2), dtype=np.float32)
    X[1, 0, 0] = np.nan
    np.savez(tmp_path / "n.npz", X=X, y=[0, 1, 1])
    data = load_data_file(tmp_path / "n.npz", skip_bad=True)
    assert len(data.X) == 2 and data.skipped == ["X[1]"]


# ------------------------------------------------------------------- shared behaviour


def test_format_detection_and_option_checks(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DatasetError, match="cannot tell the format"):
        load_data_file(tmp_path / "a.txt")
    (tmp_path / "w.xlsx").write_bytes(b"")
    with pytest.raises(DatasetError, match="load_digits6x6"):
        load_data_file(tmp_path / "w.xlsx")
    with pytest.raises(ValueError, match="label_column applies to CSV files only"):
        load_data_file(tmp_path / "a.txt", format="npz", label_column="first")
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        load_data_file(tmp_path / "a.txt", format="csv", channels=2)
    with pytest.raises(ValueError, match="format must be one of"):
        load_data_file(tmp_path / "a.txt", format="xls")
    assert parse_image_size("28") == (28, 28)
    assert parse_image_size("28x32") == (28, 32)
    assert parse_image_size([3, 4]) == (3, 4)
    with pytest.raises(ValueError, match="image size must be H or HxW"):
        parse_image_size("0x3")


def test_normalisation_uses_the_training_split_only(tmp_path):
    rng = np.random.default_rng(6)
    X = rng.random((40, 3, 2, 2)).astype(np.float32)
    X[:, 1] *= 10
    y = np.repeat([0, 1], 20)
    np.savez(tmp_path / "n.npz", X=X, y=y)
    data = load_data_file(tmp_path / "n.npz")
    split = data.split(val_fraction=0.25, seed=3, normalize=True)
    stats = split.preprocessing["normalize"]
    train_idx, val_idx = stratified_split(y, 0.25, seed=3)
    raw_train = X[train_idx]
    np.testing.assert_allclose(stats["mean"], raw_train.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], raw_train.std(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(split.train[0].mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert split.train[0].dtype == np.float32
    # evaluate/predict apply the same statistics to new inputs
    raw_val = X[val_idx]
    np.testing.assert_allclose(apply_preprocessing(raw_val, split.preprocessing), split.val[0])
    assert apply_preprocessing(raw_val, {"normalize": None}) is raw_val
    assert Normalization.from_dict(stats) == Normalization.fit(raw_train)
    assert split.preprocessing["format"] == "npz" and split.preprocessing["channels"] == 3


def test_summary_and_unbalanced_warning(tmp_path):
    np.savez(tmp_path / "u.npz", X=grey_images(13), y=[0] * 10 + [1] * 3)
    data = load_data_file(tmp_path / "u.npz")
    text = data.summary()
    assert "13 samples, 2 classes" in text and "images    5×7, 1 channel (greyscale)" in text
    assert "classes   0 10, 1 3" in text and "values    " in text
    assert "warning   classes are unbalanced: '0' has 10 samples but '1' only 3" in text
    np.savez(tmp_path / "b.npz", X=grey_images(12), y=[0] * 8 + [1] * 4)
    assert load_data_file(tmp_path / "b.npz").warnings() == []
    split = data.split(val_fraction=0.2, seed=0)
    assert "split     train 10, val 3" in split.summary


def test_unlabelled_data_cannot_be_split(tmp_path):
    np.save(tmp_path / "only.npy", grey_images(3))
    data = load_data_file(tmp_path / "only.npy", require_labels=False)
    with pytest.raises(DatasetError, match="has no labels"):
        data.split()


def test_csv_quoted_values(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('"label","a","b","c","d"\n"cat","0","255","0","0"\n"dog","1","2","3","4"\n')
    data = load_data_file(path)
    assert data.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(data.X[0, 0], np.array([[0, 1], [0, 0]], dtype=np.float32))


def test_load_for_model_reads_new_inputs_like_the_training_data(tmp_path):
    rgb = np.random.default_rng(7).integers(0, 256, size=(4, 6, 6, 3), dtype=np.uint8)
    labels = [0, 1, 0, 1]
    np.savez(tmp_path / "train.npz", X=rgb.transpose(0, 3, 1, 2), y=labels)
    split = load_data_file(tmp_path / "train.npz").split(val_fraction=0, normalize=True)
    # New inputs: a folder of larger colour images, read as the run's 3×6×6 and normalised.
    root = tmp_path / "new"
    for i, image in enumerate(rgb):
        (root / str(labels[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((12, 12), Image.Resampling.NEAREST).save(
            root / str(labels[i]) / f"{i}.png"
        )
    new = load_for_model(root, split.preprocessing, class_names=split.class_names)
    assert new.image_shape == (3, 6, 6)
    np.testing.assert_allclose(new.X.mean(axis=(0, 2, 3)), 0, atol=0.05)
    # An unlabelled CSV of the wrong size is refused, naming both sizes.
    write_csv(tmp_path / "t.csv", [[0] * 27] * 2)
    assert load_for_model(tmp_path / "t.csv", {}).image_shape == (3, 3, 3)  # as stored
    with pytest.raises(DatasetError, match=r"an image of 6×6 needs 36"):
        load_for_model(tmp_path / "t.csv", split.preprocessing)


def test_new_folder_may_hold_some_of_the_model_classes(tmp_path):
    root = write_folder(tmp_path / "d", grey_images(2), [0, 0], ["dog"])
    data = load_data_file(root, class_names=["cat", "dog", "emu"])
    assert data.class_names == ["cat", "dog", "emu"] and data.y.tolist() == [1, 1]


def test_folder_train_alone_and_train_val_test(tmp_path):
    root = tmp_path / "d"
    write_folder(root / "train", grey_images(4), [0, 1, 0, 1], ["a", "b"])
    alone = load_data_file(root)
    assert alone.class_names == ["a", "b"] and alone.test is None and len(alone.X) == 4
    write_folder(root / "val", grey_images(2), [0, 1], ["a", "b"])
    write_folder(root / "test", grey_images(3), [0, 1, 1], ["a", "b"])
    data = load_data_file(root)
    assert data.test_name == "val" and len(data.test[0]) == 2
    assert any(
        note.startswith("test/ is not read: val/ is the validation split") for note in data.notes
    )


def test_folder_with_an_unlabelled_test_folder(tmp_path):
    root = tmp_path / "d"
    write_folder(root / "train", grey_images(4), [0, 1, 0, 1], ["a", "b"])
    (root / "test").mkdir()
    Image.fromarray(grey_images(1)[0]).save(root / "test" / "x.png")
    data = load_data_file(root)
    assert data.class_names == ["a", "b"] and data.test is None
    assert data.notes[0].startswith("test/ is not read: it has no class folders")
