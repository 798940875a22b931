"""``cnnx evaluate`` and ``cnnx predict`` on checkpoints written by ``cnnx train``."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from cnnx.cli import main
from cnnx.datasets import load_digits6x6, write_digits6x6, write_idx


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "a"
    result = CliRunner().invoke(
        main, ["train", "--quiet", "--epochs", "60", "--output-dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_evaluate_reproduces_the_runs_validation_split(run_dir):
    result = invoke("evaluate", str(run_dir / "last.npz"))
    assert result.exit_code == 0, result.output
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"accuracy    {last['val_accuracy']:.4f}" in result.output
    assert "val split: 18 samples" in result.output
    assert "precision  recall  support" in result.output
    assert "confusion matrix (rows: true class, columns: predicted)" in result.output


def test_evaluate_all_and_train_splits(run_dir):
    assert (
        "all split: 96 samples"
        in invoke("evaluate", str(run_dir / "last.npz"), "--split", "all").output
    )
    assert (
        "train split: 78 samples"
        in invoke("evaluate", str(run_dir / "best.npz"), "--split", "train").output
    )


def test_evaluate_on_another_workbook(run_dir, tmp_path):
    X, y = load_digits6x6()
    path = tmp_path / "other.xlsx"
    write_digits6x6(path, X[:9], y[:9])
    result = invoke("evaluate", str(run_dir / "last.npz"), "--data", str(path))
    assert result.exit_code == 0, result.output
    assert "all split: 9 samples" in result.output


def test_evaluate_plot_without_matplotlib_is_a_note(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = invoke("evaluate", str(run_dir / "last.npz"), "--plot", str(tmp_path / "cm.png"))
    assert result.exit_code == 0
    assert 'needs matplotlib: pip install "cnnx[plot]"' in result.stderr
    assert not (tmp_path / "cm.png").exists()


def test_evaluate_bad_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"junk")
    result = invoke("evaluate", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "not a cnnx checkpoint" in result.stderr


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_predict_workbook_formats(run_dir, fmt):
    from importlib import resources

    bundled = resources.files("cnnx.datasets").joinpath("digits6x6.xlsx")
    result = invoke("predict", str(run_dir / "last.npz"), str(bundled), "--format", fmt)
    assert result.exit_code == 0, result.output
    if fmt == "json":
        rows = json.loads(result.output)
        assert len(rows) == 96
        assert set(rows[0]) == {"sample", "predicted", "label", "p_1", "p_2", "p_3"}
        assert all(abs(r["p_1"] + r["p_2"] + r["p_3"] - 1) < 1e-5 for r in rows)
    elif fmt == "csv":
        lines = result.output.splitlines()
        assert lines[0] == "sample,predicted,label,p_1,p_2,p_3"
        assert len(lines) == 97
    else:
        assert "accuracy on the 96 labelled samples" in result.output


def test_predict_unlabelled_workbook(run_dir, tmp_path):
    X, y = load_digits6x6()
    path = tmp_path / "mine.xlsx"
    write_digits6x6(path, X[:4], y[:4])
    import openpyxl

    book = openpyxl.load_workbook(path)
    for col in range(12, 12 + 6 * 4, 6):
        for row in (11, 12, 13):
            book["Data"].cell(row=row, column=col).value = None
    book.save(path)
    result = invoke("predict", str(run_dir / "last.npz"), str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 4 and "label" not in rows[0]  # no labels in the file, no column


def test_predict_npy_and_idx_and_shape_errors(run_dir, tmp_path):
    X, _ = load_digits6x6()
    np.save(tmp_path / "one.npy", X[0])  # (C, H, W)
    result = invoke(
        "predict", str(run_dir / "last.npz"), str(tmp_path / "one.npy"), "--format", "csv"
    )
    assert result.exit_code == 0 and len(result.output.splitlines()) == 2
    write_idx(tmp_path / "imgs-idx3-ubyte", (X[:5, 0] * 255).round().astype(np.uint8))
    result = invoke("predict", str(run_dir / "last.npz"), str(tmp_path / "imgs-idx3-ubyte"))
    assert result.exit_code == 0, result.output
    np.save(tmp_path / "big.npy", np.zeros((2, 1, 28, 28), dtype=np.float32))
    result = invoke("predict", str(run_dir / "last.npz"), str(tmp_path / "big.npy"))
    assert result.exit_code == 1
    assert "samples have shape (1, 28, 28) but simple_cnn expects (1, 6, 6)" in result.stderr
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    result = invoke("predict", str(run_dir / "last.npz"), str(tmp_path / "obj.npy"))
    assert result.exit_code == 1 and "not a readable .npy" in result.stderr
