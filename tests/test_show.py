"""``cnnx show``: each picture is a real PNG; without matplotlib, one line naming the extra."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnx import models
from cnnx.cli import main

DATA_DIR = Path(__import__("os").environ.get("CNNX_DATA_DIR", "/work/shared/data")) / "mnist"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("show")
    result = run("train", "--model", "enhanced", "--output-dir", root / "e0", "-q")
    assert result.exit_code == 0, result.output
    return root / "e0"


def commands(run_dir: Path, out: Path) -> dict[str, list]:
    ckpt = run_dir / "last.npz"
    return {
        "filters": ["show", "filters", ckpt, "-o", out / "filters.png"],
        "maps": ["show", "maps", ckpt, "--sample", 3, "-o", out / "maps.png"],
        "curves": ["show", "curves", run_dir, "-o", out / "curves.png"],
        "errors": ["show", "errors", ckpt, "-o", out / "errors.png"],
        "confusion": ["show", "confusion", ckpt, "--split", "all", "-o", out / "confusion.png"],
    }


@pytest.mark.parametrize("name", ["filters", "maps", "curves", "errors", "confusion"])
def test_each_plot_is_a_real_png(trained, tmp_path, name):
    args = commands(trained, tmp_path)[name]
    result = run(*args)
    assert result.exit_code == 0, result.output
    path = Path(args[-1])
    assert f"wrote {path}" in result.output
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        image.load()  # decodes every pixel
    assert width >= 200 and height >= 200
    assert len(np.unique(np.asarray(image.convert("L")))) > 2  # something was drawn


def test_errors_counts_the_mistakes(trained, tmp_path):
    result = run(*commands(trained, tmp_path)["errors"])
    assert "6 of 18 samples misclassified" in result.output  # E-Adam seed 0: 2/3 on val


@pytest.mark.parametrize("name", ["filters", "maps", "curves", "errors", "confusion"])
def test_without_matplotlib_one_line_naming_the_extra(trained, tmp_path, monkeypatch, name):
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    result = CliRunner().invoke(main, [str(a) for a in commands(trained, tmp_path)[name]])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert 'pip install "cnnx[plot]"' in result.output
    assert not (tmp_path / f"{name}.png").exists()


@pytest.mark.skipif(not (DATA_DIR / "t10k-images-idx3-ubyte.gz").exists(), reason="no MNIST")
def test_maps_and_confusion_on_mnist_files_with_labels(tmp_path):
    ckpt = tmp_path / "mnist.npz"
    models.get("mnist_cnn", seed=0).save(ckpt, dataset="mnist")
    images = DATA_DIR / "t10k-images-idx3-ubyte.gz"
    labels = DATA_DIR / "t10k-labels-idx1-ubyte.gz"
    result = run("show", "maps", ckpt, images, "--sample", 7, "-o", tmp_path / "m.png")
    assert result.exit_code == 0, result.output
    result = run("show", "confusion", ckpt, images, "--labels", labels, "-o", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "c.png") as image:
        assert image.format == "PNG" and min(image.size) >= 200
    result = run("show", "errors", ckpt, images, "-o", tmp_path / "e.png")
    assert result.exit_code == 1 and "no labels" in result.output


def test_curves_reports_a_missing_or_broken_metrics_file(tmp_path):
    result = run("show", "curves", tmp_path, "-o", tmp_path / "c.png")
    assert result.exit_code == 1 and "metrics.jsonl: no such file" in result.output
    good = (
        '{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": null, "val_accuracy": null, '
        '"seconds": 0.1}'
    )
    (tmp_path / "metrics.jsonl").write_text(good + "\nnot json\n")
    result = run("show", "curves", tmp_path, "-o", tmp_path / "c.png")
    assert result.exit_code == 1 and "line 2: not valid JSON" in result.output


def test_output_into_a_missing_directory_is_one_line_naming_it(trained, tmp_path):
    # QA: the message named the hidden temporary file ('.c.png.tmp-18ffb1b2') and
    # began with "[Errno 2]"; it should name the -o path and the missing directory.
    out = tmp_path / "missing" / "c.png"
    result = run("show", "curves", trained, "-o", out)
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert result.output.startswith(f"error: {out}: ")
    assert "does not exist" in result.output and ".tmp-" not in result.output
    assert "Errno" not in result.output


def test_confusion_says_which_data_it_counts(trained, tmp_path, monkeypatch):
    # QA: confusion.png had no title and the command printed only "wrote ...", so a
    # saved picture did not say which checkpoint or data (split) it counted.
    from cnnx.inspect import plots

    titles = []
    real_save = plots.save

    def save(fig, path, **kwargs):
        titles.extend(ax.get_title() for ax in fig.axes)
        return real_save(fig, path, **kwargs)

    monkeypatch.setattr(plots, "save", save)
    result = run(*commands(trained, tmp_path)["confusion"])
    assert result.exit_code == 0, result.output
    line = "64 of 96 samples right (the bundled 6×6 digits (96 samples), all split)"
    assert line in result.output  # E-Adam seed 0 is right on 2/3 of all 96
    assert titles == [f"last.npz: {line}"]


def _longest_blank_band(path: Path) -> int:
    """The most consecutive all-white pixel rows in a PNG."""
    with Image.open(path) as image:
        grey = np.asarray(image.convert("L"))
    blank = (grey >= 250).all(axis=1)
    longest = run_length = 0
    for row_is_blank in blank:
        run_length = run_length + 1 if row_is_blank else 0
        longest = max(longest, run_length)
    return longest


def test_maps_title_sits_on_the_maps(trained, tmp_path):
    # QA: maps.png had a blank band of about an eighth of its height between the title
    # and the first row (matplotlib's default top margin on a tall figure).
    args = commands(trained, tmp_path)["maps"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert _longest_blank_band(Path(args[-1])) < 45


def test_curves_of_a_short_run_mark_whole_epochs_only(tmp_path, monkeypatch):
    # QA: a 2-epoch run's curves had ticks at epoch 1.2, 1.4, ...
    from cnnx.inspect import plots

    result = run("train", "--epochs", "2", "--output-dir", tmp_path / "r", "-q")
    assert result.exit_code == 0, result.output
    ticks = []
    real_save = plots.save

    def save(fig, path, **kwargs):
        ticks.extend(t for ax in fig.axes for t in ax.get_xticks() if ax.get_xlim()[0] <= t)
        return real_save(fig, path, **kwargs)

    monkeypatch.setattr(plots, "save", save)
    result = run("show", "curves", tmp_path / "r", "-o", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    assert ticks and all(float(t).is_integer() for t in ticks)
