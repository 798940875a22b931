"""``cnnx train`` through click's CliRunner, and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from cnnx.checkpoint import load_checkpoint
from cnnx.cli import main
from cnnx.datasets import write_digits6x6


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_default_run_prints_a_summary():
    result = run("train", "--epochs", "20", "--quiet")
    assert result.exit_code == 0, result.output
    out = result.output
    for field in (
        "device",
        "model",
        "optimizer",
        "epochs",
        "train accuracy",
        "val accuracy",
        "wall time",
    ):
        assert field in out
    assert "simple_cnn (69 parameters)" in out
    assert "Adam(lr=0.01, weight_decay=0, beta1=0.7, beta2=0.99" in out
    assert "(78 samples)" in out and "(18 samples)" in out


def test_progress_lines_when_not_a_terminal(monkeypatch):
    # Not a terminal: a line when 10 s have passed since the last one, and the last epoch.
    # Each epoch takes 4 s on a fake clock, so lines come at 12 s, 24 s, ... and epoch 20.
    from cnnx.cli.train import Reporter
    from cnnx.utils import progress

    clock = {"t": 0.0}
    monkeypatch.setattr(progress, "_now", lambda: clock["t"])
    original = Reporter.on_epoch

    def four_seconds_an_epoch(self, record):
        clock["t"] += 4.0
        original(self, record)

    monkeypatch.setattr(Reporter, "on_epoch", four_seconds_an_epoch)
    result = CliRunner().invoke(main, ["train", "--epochs", "20"])
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == [f"{e}/20" for e in (3, 6, 9, 12, 15, 18, 20)]
    assert all("val_acc" in line for line in lines)


def test_a_fast_run_off_a_terminal_prints_its_last_epoch_only():
    result = CliRunner().invoke(main, ["train", "--epochs", "20"])
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["20/20"]


def test_output_dir_holds_config_metrics_and_weights(tmp_path):
    out = tmp_path / "run"
    result = run("train", "--epochs", "12", "--quiet", "--output-dir", str(out), "--seed", "3")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 3 and config["epochs"] == 12 and config["model"] == "simple_cnn"
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 12
    record = json.loads(lines[-1])
    assert set(record) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert record["epoch"] == 12
    ck = load_checkpoint(out / "last.npz")
    assert ck.epoch == 12 and ck.model_name == "simple_cnn"
    assert (out / "best.npz").exists()


def test_existing_output_dir_is_never_overwritten_without_the_flag(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run("train", "--epochs", "2", "--quiet", "--output-dir", str(out))
    assert result.exit_code == 1
    assert "already exists and is not empty (notes.txt)" in result.stderr
    assert "Traceback" not in result.output
    assert (out / "notes.txt").read_text() == "mine"
    result = run("train", "--epochs", "2", "--quiet", "--output-dir", str(out), "--overwrite")
    assert result.exit_code == 0
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite replaces the run, not your files


def test_own_workbook_with_other_count_and_range(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((15, 1, 6, 6), dtype=np.float32)
    y = np.repeat(np.arange(3), 5)
    path = tmp_path / "mine.xlsx"
    write_digits6x6(path, X, y)
    result = run("train", "--data", str(path), "--epochs", "5", "--quiet")
    assert result.exit_code == 0, result.output
    assert "(12 samples)" in result.output and "(3 samples)" in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--device", "tpu"], 1, "unknown device 'tpu'"),
        (["--optimizer", "lbfgs"], 2, "Invalid value for '--optimizer'"),
        (["--model", "resnet"], 1, "unknown model 'resnet'"),
        (["--rho", "0.9"], 2, "--rho applies to rmsprop, not to adam"),
        (["--optimizer", "sgd", "--beta1", "0.9"], 2, "--beta1 applies to adam, not to sgd"),
        (["--lr", "-1"], 2, "lr must be > 0"),
        (["--epochs", "0"], 2, "Invalid value for '--epochs'"),
        (["--val-fraction", "1.5"], 2, "Invalid value for '--val-fraction'"),
        (["--save-every", "5"], 2, "--save-every needs --output-dir"),
        (["--dataset", "mnist", "--data", "x.xlsx"], 2, "for mnist use --data-dir"),
    ],
)
def test_bad_flags_are_one_line_errors(args, code, message):
    result = run("train", "--epochs", "2", *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_workbook_is_a_one_line_error(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_text("not a workbook")
    result = run("train", "--data", str(path))
    assert result.exit_code == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and str(path) in error_lines[0]


def test_cuda_without_a_gpu_says_what_is_missing():
    from cnnx.backends import gpu_status

    if gpu_status()[0] > 0:
        pytest.skip("a GPU is usable here")
    result = run("train", "--device", "cuda")
    assert result.exit_code == 1
    assert "device 'cuda' is not usable" in result.stderr
    assert "cnnx[cuda12]" in result.stderr


def test_divergence_is_a_one_line_error():
    result = run(
        "train", "--optimizer", "sgd", "--lr", "1e38", "--model", "enhanced", "--epochs", "30"
    )
    assert result.exit_code == 1, result.output
    assert "error: training diverged in epoch" in result.stderr


def test_mnist_without_files_explains_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNX_MNIST_MIRRORS", "http://127.0.0.1:9/")
    result = run("train", "--dataset", "mnist", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: MNIST train files not found")
    assert str(tmp_path) in message and "127.0.0.1:9" in message and "by hand" in message


def test_python_m_cnnx_runs_in_a_subprocess(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cnnx", "train", "--epochs", "5", "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "val accuracy" in result.stdout


def test_summary_lists_layers_and_counts():
    result = run("summary", "simple")
    assert result.exit_code == 0
    assert "total parameters: 69" in result.output
    result = run("summary", "enhanced")
    assert "total parameters: 239" in result.output
    listing = run("summary", "--list")
    assert "mnist_cnn" in listing.output and "(also: simple)" in listing.output


def test_help_texts_have_examples():
    for command in ([], ["train"], ["evaluate"], ["predict"], ["summary"]):
        result = run(*command, "--help")
        assert result.exit_code == 0
        assert "Examples:" in result.output
