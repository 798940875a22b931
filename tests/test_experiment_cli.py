"""Tests of the ``cnnx experiment`` command."""

from __future__ import annotations

import csv
import json

from click.testing import CliRunner

from cnnx.cli.main import main


def invoke(*args: str):
    return CliRunner().invoke(main, ["experiment", *args], catch_exceptions=False)


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_list_shows_every_preset():
    result = invoke("--list")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines()]
    assert names == ["report-table5", "toy-lr", "toy-kernel"]


def test_a_grid_described_by_flags_runs_and_prints_the_summary(tmp_path):
    out = tmp_path / "out"
    result = invoke(
        "--model", "simple", "--model", "enhanced", "--optimizer", "adam", "--lr", "0.01",
        "--lr", "0.001", "--seeds", "0-1", "--epochs", "2", "--output-dir", str(out), "-q",
        "--no-plots",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = rows(out / "runs.csv")
    assert len(table) == 8
    assert [r["config"] for r in table[::2]] == [
        "simple_cnn adam lr=0.01", "simple_cnn adam lr=0.001",
        "enhanced_cnn adam lr=0.01", "enhanced_cnn adam lr=0.001",
    ]  # fmt: skip
    assert {r["epochs"] for r in table} == {"2"}
    assert result.stdout == (out / "summary.md").read_text()
    assert "## Mean ± std of the final accuracy" in result.stdout


def test_a_bare_grid_uses_the_dataset_defaults_of_cnnx_train(tmp_path):
    result = invoke("--seeds", "0", "--epochs", "1", "-q", "--no-plots",
                    "--output-dir", str(tmp_path / "o"))  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "o" / "experiment.json").read_text())["configs"][0]
    assert config["model"] == "simple_cnn" and config["optimizer"] == "adam"
    assert config["hyperparameters"] == {"beta1": 0.7, "beta2": 0.99, "lr": 0.01}


def test_patterns_grid_over_kernel_sizes_with_dataset_options(tmp_path):
    result = invoke(
        "--dataset", "patterns", "--model-option", "kernel_size=3,5", "--lr", "0.01",
        "--dataset-option", "n_per_class=6", "--epochs", "2", "--seeds", "0", "-q",
        "--no-plots", "--output-dir", str(tmp_path / "o"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "o" / "runs.csv")
    assert [r["model"] for r in table] == [
        "toy_convnet(kernel_size=3)", "toy_convnet(kernel_size=5)",
    ]  # fmt: skip
    assert {r["batch_size"] for r in table} == {"8"}  # the patterns default, as in cnnx train
    assert {int(r["train_samples"]) + int(r["val_samples"]) for r in table} == {18}


def test_a_preset_with_overrides_and_a_bare_resume(tmp_path):
    out = tmp_path / "out"
    args = ("report-table5", "--epochs", "2", "--seeds", "0", "--output-dir", str(out))
    result = invoke(*args, "-q", "--no-plots")
    assert result.exit_code == 0, result.output
    table = rows(out / "runs.csv")
    assert [r["config"] for r in table] == ["S-SGD", "S-RMSprop", "S-Adam", "E-RMSprop", "E-Adam"]
    assert {r["max_epochs"] for r in table} == {"2"}

    (out / "runs" / "E-Adam__seed0.json").unlink()
    result = invoke("--resume", "--output-dir", str(out), "--no-plots")
    assert result.exit_code == 0, result.output
    assert "4 of 5 runs already finished" in result.stderr
    assert "[5/5] E-Adam seed 0" in result.stderr
    assert len(rows(out / "runs.csv")) == 5


def test_a_preset_refuses_grid_flags():
    result = invoke("report-table5", "--lr", "0.1")
    assert result.exit_code == 2
    assert "--lr cannot change it" in result.output


def test_unknown_preset_is_a_usage_error():
    result = invoke("table6")
    assert result.exit_code == 2 and "unknown preset 'table6'" in result.output


def test_a_flag_for_the_wrong_optimizer_is_a_usage_error():
    result = invoke("--optimizer", "adam", "--rho", "0.9")
    assert result.exit_code == 2 and "--rho applies to rmsprop, not to adam" in result.output


def test_existing_output_dir_is_a_one_line_error(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    result = invoke("--seeds", "0", "--epochs", "1", "--output-dir", str(tmp_path))
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --output-dir") and "--resume" in line


def test_bad_model_option_is_a_one_line_error():
    result = invoke("--model", "simple", "--model-option", "width=3", "--epochs", "1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: configuration 'simple_cnn adam lr=0.01'")
    assert "width" in result.stderr
