"""Exact resume: 2E epochs in one go equal E epochs, a stop, and E more (CPU, bit for bit)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cnnx.checkpoint import load_checkpoint
from cnnx.cli import main
from cnnx.cli.output import RunDirectory

COMMON = ["--quiet", "--batch-size", "16", "--seed", "4", "--model", "enhanced"]


def train(*args):
    result = CliRunner().invoke(main, ["train", *COMMON, *args])
    assert result.exit_code == 0, result.output
    return result


def metrics(path):
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
    return rows


def assert_same_run(a, b):
    assert metrics(a) == metrics(b)
    ck_a, ck_b = load_checkpoint(a / "last.npz"), load_checkpoint(b / "last.npz")
    assert ck_a.epoch == ck_b.epoch and ck_a.step == ck_b.step
    for key, value in ck_a.model_state.items():
        np.testing.assert_array_equal(value, ck_b.model_state[key], err_msg=key)
    for name, state in ck_a.optimizer_state.items():
        for key, value in state.items():
            np.testing.assert_array_equal(value, ck_b.optimizer_state[name][key])
    assert ck_a.meta["rng"] == ck_b.meta["rng"]


def test_resume_equals_one_long_run(tmp_path):
    train("--epochs", "10", "--output-dir", str(tmp_path / "whole"))
    train("--epochs", "5", "--output-dir", str(tmp_path / "split"))
    train("--resume", str(tmp_path / "split"), "--epochs", "10")
    assert_same_run(tmp_path / "whole", tmp_path / "split")


def test_resume_after_an_interruption_between_checkpoints(tmp_path, monkeypatch):
    train("--epochs", "10", "--output-dir", str(tmp_path / "whole"))
    original = RunDirectory.append_metrics

    def interrupt_at_seven(self, record):
        if record.epoch == 7:
            raise KeyboardInterrupt
        original(self, record)

    monkeypatch.setattr(RunDirectory, "append_metrics", interrupt_at_seven)
    result = CliRunner().invoke(
        main, ["train", *COMMON, "--epochs", "10", "--save-every", "3",
               "--output-dir", str(tmp_path / "killed")],
    )  # fmt: skip
    assert result.exit_code == 130
    assert load_checkpoint(tmp_path / "killed" / "last.npz").epoch == 6
    monkeypatch.setattr(RunDirectory, "append_metrics", original)
    train("--resume", str(tmp_path / "killed"))
    assert_same_run(tmp_path / "whole", tmp_path / "killed")


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--lr", "0.5"], "--lr 0.5 (saved: 0.01)"),
        (["--model", "simple"], "--model simple_cnn (saved: enhanced_cnn)"),
        (["--seed", "5"], "--seed 5 (saved: 4)"),
        (["--batch-size", "8"], "--batch-size 8 (saved: 16)"),
    ],
)
def test_resume_refuses_contradicting_flags(tmp_path, flag, message):
    train("--epochs", "2", "--output-dir", str(tmp_path / "run"))
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "run"), *flag])
    assert result.exit_code == 2
    assert "contradict" in result.output and message in result.output


def test_resume_needs_more_epochs_than_done(tmp_path):
    train("--epochs", "3", "--output-dir", str(tmp_path / "run"))
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "already has 3 epochs" in result.output


def test_resume_of_a_directory_without_a_run(tmp_path):
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 1
    assert "no config.json and last.npz there" in result.output


@pytest.mark.gpu
def test_resume_on_the_gpu_matches_within_float32_tolerance():
    import cnnx

    X, y = cnnx.datasets.load_digits6x6()
    results = []
    for split in (False, True):
        model = cnnx.models.get("enhanced_cnn", seed=4)
        opt = cnnx.optim.Adam(model.named_parameters(), lr=0.01)
        rng = np.random.default_rng(4)
        if split:
            cnnx.fit(model, opt, (X, y), epochs=5, batch_size=16, rng=rng, device="cuda")
            cnnx.fit(model, opt, (X, y), epochs=10, batch_size=16, rng=rng, initial_epoch=5)
        else:
            cnnx.fit(model, opt, (X, y), epochs=10, batch_size=16, rng=rng, device="cuda")
        results.append(model.state_dict())
    for key, value in results[0].items():
        np.testing.assert_allclose(results[1][key], value, rtol=1e-4, atol=1e-6)
