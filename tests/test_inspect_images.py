"""Image files prepared like MNIST: digits drawn from MNIST arrays at other sizes and
polarities come back as the model saw the originals."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnx
from cnnx import datasets, models, optim
from cnnx.errors import CnnxError, DatasetError
from cnnx.inspect.images import mnist_style, prepare_image, prepare_images

DATA = Path(os.environ.get("CNNX_DATA_DIR", "/work/shared/data")) / "mnist"
needs_mnist = pytest.mark.skipif(
    not (DATA / "t10k-images-idx3-ubyte.gz").exists(), reason="MNIST test set not present"
)


def draw(array: np.ndarray, path: Path, side: int, dark_on_light: bool, pad: tuple) -> Path:
    """Save a (H, W) [0, 1] digit as an image file of another size, polarity and framing."""
    pixels = (array * 255).astype(np.uint8)
    image = Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC)
    pixels = np.asarray(image)
    if dark_on_light:
        pixels = 255 - pixels
    pixels = np.pad(pixels, pad, constant_values=int(pixels[0, 0]))
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def mnist_model(tmp_path_factory):
    """mnist_cnn trained for 2 epochs on 3000 test-set images (the rest stay unseen)."""
    X, y = datasets.load_mnist("test", root=DATA, download=False)
    model = models.get("mnist_cnn", seed=0)
    opt = optim.Adam(model.named_parameters(), lr=0.002)
    cnnx.fit(model, opt, (X[:3000], y[:3000]), epochs=2, batch_size=64)
    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    model.save(path, opt, dataset="mnist")
    return model, path, X[5000:5040], y[5000:5040]


@needs_mnist
def test_predict_recovers_predictions_on_redrawn_digits(mnist_model, tmp_path):
    model, _, X, _ = mnist_model
    expected = cnnx.predict_proba(model, X).argmax(axis=1)
    paths = []
    for i, sample in enumerate(X):
        pad = [((0, 0), (0, 0)), ((6, 25), (18, 3)), ((12, 12), (0, 0))][i % 3]
        suffix = ".png" if i % 2 else ".jpg"
        paths.append(
            draw(sample[0], tmp_path / f"d{i}{suffix}", [40, 56, 90, 120][i % 4], i % 2 == 0, pad)
        )
    prepared = prepare_images(paths, (1, 28, 28))
    assert prepared.shape == (40, 1, 28, 28) and prepared.dtype == np.float32
    got = cnnx.predict_proba(model, prepared).argmax(axis=1)
    agreement = float((got == expected).mean())
    assert agreement >= 0.85, agreement  # 0.975 measured


def test_six_by_six_digits_round_trip(tmp_path):
    X, _ = datasets.load_digits6x6()
    model = models.get("simple_cnn", seed=0)
    opt = optim.Adam(model.named_parameters(), lr=0.01, beta1=0.7, beta2=0.99)
    cnnx.fit(model, opt, datasets.load_digits6x6(), epochs=300)
    picks = X[::6]
    expected = cnnx.predict_proba(model, picks).argmax(axis=1)
    paths = [
        draw(s[0], tmp_path / f"s{i}.png", 48, i % 2 == 0, ((0, 0), (0, 0)))
        for i, s in enumerate(picks)
    ]
    prepared = prepare_images(paths, (1, 6, 6))
    agreement = (cnnx.predict_proba(model, prepared).argmax(axis=1) == expected).mean()
    assert agreement >= 0.8, agreement


def test_centre_of_mass_and_box():
    canvas = np.ones((50, 80), dtype=np.float32)  # white paper
    canvas[10:40, 5:20] = 0.0  # a dark bar, off-centre
    digit = mnist_style(canvas, 28)
    ys, xs = np.nonzero(digit > 0.1)
    assert ys.max() - ys.min() + 1 <= 21 and xs.max() - xs.min() + 1 <= 21
    total = digit.sum()
    cy = (np.indices(digit.shape)[0] * digit).sum() / total
    cx = (np.indices(digit.shape)[1] * digit).sum() / total
    assert abs(cy - 13.5) <= 0.6 and abs(cx - 13.5) <= 0.6
    assert digit.max() == pytest.approx(1.0, abs=0.05) and digit[0, 0] == 0


def test_blank_and_unreadable_images(tmp_path):
    Image.new("L", (30, 30), 255).save(tmp_path / "blank.png")
    with pytest.raises(DatasetError, match=r"blank\.png: the image is blank"):
        prepare_image(tmp_path / "blank.png", (1, 28, 28))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"bad\.png: not a readable image"):
        prepare_image(tmp_path / "bad.png", (1, 28, 28))
    with pytest.raises(DatasetError, match="one square grey input channel"):
        prepare_image(tmp_path / "blank.png", (3, 32, 32))


def test_without_pillow_a_clear_error(tmp_path, monkeypatch):
    Image.new("L", (30, 30), 0).save(tmp_path / "x.png")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(CnnxError, match=r'pip install "cnnx\[images\]"'):
        prepare_image(tmp_path / "x.png", (1, 28, 28))


def _cli(*args):
    from click.testing import CliRunner

    from cnnx.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


@needs_mnist
def test_cnnx_predict_on_image_files(mnist_model, tmp_path):
    model, checkpoint, X, _ = mnist_model
    expected = cnnx.predict_proba(model, X[:12]).argmax(axis=1)
    paths = [
        draw(s[0], tmp_path / f"p{i}{'.png' if i % 2 else '.jpg'}", 64 + 8 * i, i % 2 == 0,
             ((3 * i, 0), (0, 2 * i)))
        for i, s in enumerate(X[:12])
    ]  # fmt: skip
    shown = tmp_path / "prep.png"
    result = _cli("predict", checkpoint, *paths, "--format", "json", "--show-input", "-o", shown)
    assert result.exit_code == 0, result.output
    import json

    rows = json.loads(result.stdout)
    assert [row["file"] for row in rows] == [str(p) for p in paths]
    got = np.array([int(row["predicted"]) for row in rows])
    assert (got == expected).mean() >= 0.8
    with Image.open(shown) as image:
        assert image.format == "PNG" and min(image.size) >= 150


def test_cnnx_predict_image_errors(tmp_path, monkeypatch):
    checkpoint = tmp_path / "m.npz"
    models.get("simple_cnn", seed=0).save(checkpoint, dataset="digits6x6")
    Image.new("L", (30, 30), 255).save(tmp_path / "blank.png")
    result = _cli("predict", checkpoint, tmp_path / "blank.png")
    assert result.exit_code == 1 and "blank.png: the image is blank" in result.output
    mixed = _cli("predict", checkpoint, tmp_path / "blank.png", tmp_path / "x.npy")
    assert mixed.exit_code == 2 and "not both" in mixed.output
    assert _cli("predict", checkpoint, tmp_path / "blank.png", "--show-input").exit_code == 2
    monkeypatch.setitem(sys.modules, "PIL", None)
    result = _cli("predict", checkpoint, tmp_path / "blank.png")
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == 'error: reading image files needs Pillow: pip install "cnnx[images]"'
    )


def test_predict_show_input_without_matplotlib(tmp_path, monkeypatch):
    checkpoint = tmp_path / "m.npz"
    models.get("simple_cnn", seed=0).save(checkpoint, dataset="digits6x6")
    X, _ = datasets.load_digits6x6()
    draw(X[0, 0], tmp_path / "d.png", 30, True, ((0, 0), (0, 0)))
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)
    result = _cli(
        "predict", checkpoint, tmp_path / "d.png", "--show-input", "-o", tmp_path / "p.png"
    )
    assert result.exit_code == 1
    assert result.output.strip() == 'error: this needs matplotlib: pip install "cnnx[plot]"'
    assert not (tmp_path / "p.png").exists()
