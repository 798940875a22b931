"""Own data from the command line: cnnx train/evaluate/predict/experiment --data PATH.

The real-data test writes scikit-learn's bundled 8×8 digits (1,797 samples) as an image
folder, a CSV file and an .npz archive and trains the generic convnet preset on each
from the CLI, to at least 95 % validation accuracy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnx.checkpoint import load_checkpoint
from cnnx.cli import main
from cnnx.datasets import load_data_file

sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(autouse=True)
def _no_shared_cache(monkeypatch):
    # CI points CNNX_DATA_DIR at shared data; folder caches of these tests stay in tmp.
    monkeypatch.delenv("CNNX_DATA_DIR", raising=False)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def val_accuracy(output: str) -> float:
    match = re.search(r"^(?:val|test) accuracy\s+([0-9.]+)", output, re.M)
    assert match, output
    return float(match.group(1))


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> dict[str, Path]:
    """The 8×8 digits as grey levels 0-255, written as a folder, a CSV and an .npz."""
    raw = sklearn_datasets.load_digits()
    images = np.rint(raw.images * (255 / 16)).astype(np.uint8)
    labels = raw.target
    base = tmp_path_factory.mktemp("digits8x8")
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (base / "folder" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(base / "folder" / str(label) / f"{i:04d}.png")
    header = "label," + ",".join(f"pixel{k}" for k in range(64))
    rows = [f"{label}," + ",".join(map(str, image.ravel())) for image, label in
            zip(images, labels, strict=True)]  # fmt: skip
    (base / "digits.csv").write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    # Kaggle's test.csv layout: pixels only, no label column.
    pixels = [",".join(map(str, image.ravel())) for image in images[:20]]
    (base / "test.csv").write_text(header.split(",", 1)[1] + "\n" + "\n".join(pixels) + "\n")
    np.savez(base / "digits.npz", X=images, y=labels)
    return {
        "folder": base / "folder",
        "csv": base / "digits.csv",
        "npz": base / "digits.npz",
        "test_csv": base / "test.csv",
        "labels": labels,
    }


@pytest.mark.parametrize("fmt", ["folder", "csv", "npz"])
def test_convnet_reaches_95_percent_on_the_8x8_digits(digits, fmt):
    result = run(
        "train", "--data", digits[fmt], "--model", "convnet", "--lr", "0.01", "--epochs", 8,
        "--seed", 0,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "convnet" in result.output
    assert val_accuracy(result.output) >= 0.95, result.output


def test_train_prints_the_summary_and_stores_names_and_normalisation(digits, tmp_path):
    out = tmp_path / "run"
    result = run(
        "train", "--data", digits["npz"], "--normalize", "--lr", "0.01", "--epochs", 2,
        "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "classes   0 178, 1 182" in result.output
    assert "split     train 1,438, val 359" in result.output
    assert "normalised per channel with the training split's mean/std" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "files" and config["model"] == "convnet"
    assert config["dataset_options"]["normalize"] is True
    assert config["model_options"] == {"channels": 1, "image_size": [8, 8], "num_classes": 10}
    extra = load_checkpoint(out / "last.npz").extra
    assert extra["class_names"] == [str(d) for d in range(10)]
    stats = extra["preprocessing"]["normalize"]
    # The statistics are those of the training split (seed 0, 20 % held out), not of all data.
    from cnnx.datasets import stratified_split

    X = load_data_file(digits["npz"]).X
    train_idx, _ = stratified_split(digits["labels"], 0.2, seed=0)
    assert stats["mean"][0] == pytest.approx(float(X[train_idx].mean()), rel=1e-6)
    assert stats["mean"][0] != pytest.approx(float(X.mean()), rel=1e-6)
    assert stats["std"][0] == pytest.approx(float(X[train_idx].std()), rel=1e-5)


def test_predict_and_evaluate_read_files_like_the_run(digits, tmp_path):
    out = tmp_path / "run"
    trained = run(
        "train", "--data", digits["folder"], "--normalize", "--lr", "0.01", "--epochs", 6,
        "--output-dir", out, "--quiet",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    predicted = run("predict", out / "best.npz", digits["test_csv"], "--format", "json")
    assert predicted.exit_code == 0, predicted.output
    rows = json.loads(predicted.output)
    assert len(rows) == 20 and set(rows[0]) >= {"sample", "predicted", "p_0", "p_9"}
    assert [row["row"] for row in rows[:2]] == [2, 3]  # the header is row 1
    hits = sum(
        row["predicted"] == str(label)
        for row, label in zip(rows, digits["labels"][:20], strict=True)
    )
    assert hits >= 18
    evaluated = run("evaluate", out / "best.npz", "--data", digits["npz"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "all split: 1797 samples" in evaluated.output
    accuracy = float(re.search(r"^accuracy\s+([0-9.]+)", evaluated.output, re.M).group(1))
    assert accuracy >= 0.95


def test_predict_prints_folder_class_names(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "pets"
    for name, level in (("cat", 30), ("dog", 220)):
        (root / name).mkdir(parents=True)
        for i in range(6):
            image = np.clip(rng.normal(level, 10, (6, 6)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / name / f"{i}.png")
    out = tmp_path / "run"
    trained = run(
        "train", "--data", root, "--val-fraction", 0, "--lr", "0.01", "--epochs", 10,
        "--output-dir", out, "-q",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    new = tmp_path / "new"
    new.mkdir()
    Image.fromarray(np.full((12, 12), 225, dtype=np.uint8)).save(new / "a.png")  # resized
    predicted = run("predict", out / "last.npz", new)
    assert predicted.exit_code == 0, predicted.output
    assert "p_cat" in predicted.output and re.search(
        r"^\s+0\s+a\.png\s+dog\s", predicted.output, re.M
    )


def test_experiment_runs_a_grid_on_own_data(digits, tmp_path):
    result = run(
        "experiment", "--data", digits["npz"], "--epochs", 1, "--lr", "0.01", "--seeds", 0,
        "--output-dir", tmp_path / "exp", "--jobs", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "convnet adam lr=0.01" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--normalize"], "--normalize: give your own data with --data PATH"),
        (["--dataset", "mnist", "--channels", "3"], "--channels apply to your own data files"),
        (["--data", "x.csv", "--image-size", "0"], "--image-size"),
    ],
)
def test_own_data_flags_are_checked(args, message):
    result = run("train", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_bad_and_unlabelled_files_are_one_line_errors(tmp_path, digits):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,a,b,c,d\n1,0,0,0,0\n2,0,x,0,0\n2,1,1,1,1\n", encoding="utf-8")
    result = run("train", "--data", bad)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"error: {bad}: row 3, column 3 ('b') is 'x', not a number"
    )
    skipped = run("train", "--data", bad, "--skip-bad", "--epochs", 1, "--val-fraction", 0)
    assert "skipped 1 bad row: row 3" in skipped.output
    unlabelled = run("train", "--data", digits["test_csv"], "--label-column", "none")
    assert unlabelled.exit_code == 1
    assert "labels are needed here" in unlabelled.output


def test_predict_image_files_read_like_an_own_data_run(tmp_path):
    root = tmp_path / "shades"
    for name, level in (("dark", 40), ("light", 210)):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), level + i, dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )
    out = tmp_path / "run"
    trained = run(
        "train", "--data", root, "--normalize", "--val-fraction", 0, "--lr", "0.01",
        "--epochs", 15, "--output-dir", out, "-q",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.full((30, 20, 3), 215, dtype=np.uint8)).save(photo)  # any size
    predicted = run("predict", out / "last.npz", photo, "--format", "json")
    assert predicted.exit_code == 0, predicted.output
    (row,) = json.loads(predicted.output)
    assert row["file"] == str(photo) and row["predicted"] == "light"


def test_tune_searches_on_own_data(digits, tmp_path):
    result = run(
        "tune", "--data", digits["npz"], "--param", "lr=loguniform:1e-3:1e-1", "--trials", 1,
        "--epochs", 1, "--output-dir", tmp_path / "t", "--no-plots", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    best = json.loads((tmp_path / "t" / "best.json").read_text())
    assert best["dataset"] == "files" and best["model"] == "convnet"


def test_inspect_reads_own_files_with_the_stored_normalisation(digits, tmp_path):
    out = tmp_path / "run"
    trained = run(
        "train", "--data", digits["npz"], "--normalize", "--lr", "0.01", "--epochs", 2,
        "--output-dir", out, "-q",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    from_csv = run("inspect", out / "last.npz", digits["csv"])
    from_npz = run("inspect", out / "last.npz", digits["npz"])
    assert from_csv.exit_code == 0 and from_npz.exit_code == 0, from_csv.output + from_npz.output
    accuracy = re.compile(r"1797 samples, loss ([0-9.]+), accuracy ([0-9.]+)")
    assert accuracy.search(from_csv.output).groups() == accuracy.search(from_npz.output).groups()
    assert float(accuracy.search(from_npz.output).group(2)) >= 0.9
