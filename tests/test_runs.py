"""cnnx.runs: one definition of a run (RunSpec), its data, and the one function that executes it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import cnnx
from cnnx import runs
from cnnx.checkpoint import load_checkpoint
from cnnx.cli import main
from cnnx.errors import ConfigError
from cnnx.experiment.grid import RunConfig
from cnnx.runs import RunSpec


def small(**changes):
    return runs.defaults("digits6x6").replace(epochs=4, **changes)


def test_dataset_defaults_are_the_documented_ones():
    digits = runs.defaults("digits6x6")
    assert (digits.model, digits.optimizer, digits.epochs, digits.batch_size) == (
        "simple_cnn", "adam", 300, None,
    )  # fmt: skip
    assert digits.hyperparameters == {"lr": 0.01, "beta1": 0.7, "beta2": 0.99}
    mnist = runs.defaults("mnist")
    assert (mnist.model, mnist.hyperparameters, mnist.epochs, mnist.batch_size) == (
        "mnist_cnn", {"lr": 0.001}, 3, 64,
    )  # fmt: skip
    patterns = runs.defaults("patterns")
    assert (patterns.model, patterns.optimizer, patterns.epochs, patterns.batch_size) == (
        "toy_convnet", "sgd", 500, 8,
    )  # fmt: skip
    assert (digits.seed, digits.device, digits.val_fraction) == (0, "cpu", None)


def test_a_spec_survives_json_exactly():
    spec = small(hyperparameters={"lr": 0.1 / 3, "beta1": 0.7}, seed=5, batch_size=16)
    again = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())), source="x.json")
    assert again == spec and again.hyperparameters["lr"] == 0.1 / 3


def test_paths_are_stored_absolute_and_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = small(dataset_options={"path": "sub/../book.xlsx"})
    assert spec.dataset_options["path"] == str(tmp_path.resolve() / "book.xlsx")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "missing field 'dataset'"),
        ([1, 2], "expected a JSON object"),
        ({"epochs": "ten"}, "epochs must be a positive integer, got 'ten'"),
        ({"hyperparameters": {"lr": "fast"}}, "hyperparameter lr must be a number"),
        ({"hyperparameters": {"lr": float("inf")}}, "lr must be finite"),
        ({"hyperparameters": {"lr": 0.0}}, "lr must be > 0"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"val_fraction": 1.5}, r"val_fraction must be in \[0, 1\)"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"dataset": "cifar"}, "unknown dataset 'cifar'"),
        ({"model": "resnet"}, "unknown model 'resnet'"),
        ({"dataset_options": {"noise": 0.1}}, "takes no option 'noise'"),
        ({"dataset_options": "book.xlsx"}, "dataset_options must be an object"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"hyperparameters": {"lr": 0.1, "rho": 0.9}}, "adam takes no hyperparameter 'rho'"),
    ],
)
def test_a_bad_spec_is_one_line_naming_the_file_and_field(data, message):
    if isinstance(data, dict) and data:
        data = {**small().to_dict(), **data}
    with pytest.raises(ConfigError, match=message) as info:
        RunSpec.from_dict(data, source="runs/a/config.json")
    text = str(info.value)
    assert text.startswith("runs/a/config.json: ") and "\n" not in text


def test_the_config_of_an_older_cnnx_train_still_reads(tmp_path):
    legacy = {
        "dataset": "digits6x6", "data": None, "data_dir": None, "train_limit": 40,
        "model": "simple_cnn", "optimizer": "adam", "hyperparameters": {"lr": 0.01},
        "epochs": 3, "batch_size": None, "val_fraction": None, "seed": 2, "device": "cpu",
        "train_samples": 32, "val_samples": 8,
    }  # fmt: skip
    spec = RunSpec.from_dict(legacy, source="old/config.json")
    assert spec.dataset_options == {"limit": 40} and spec.seed == 2


def test_load_data_splits_with_the_seed_like_stratified_split():
    X, y = cnnx.datasets.load_digits6x6()
    data = runs.load_data(small(seed=3))
    train_idx, val_idx = cnnx.datasets.stratified_split(y, 0.2, seed=3)
    np.testing.assert_array_equal(data.train[1], y[train_idx])
    np.testing.assert_array_equal(data.val[0], X[val_idx])
    assert data.val_name == "val" and data.samples_read == 96
    assert data.description == "the bundled 6×6 digits (96 samples)"
    assert data.class_names == list(cnnx.datasets.DIGITS6X6_CLASSES)


def test_execute_is_fit_on_the_specs_data_and_model():
    spec = small(batch_size=16, seed=2)
    outcome = runs.execute(spec)
    data = runs.load_data(spec)
    model = cnnx.models.get("simple_cnn", seed=2)
    opt = cnnx.optim.Adam(model.named_parameters(), lr=0.01, beta1=0.7, beta2=0.99)
    history = cnnx.fit(model, opt, data.train, data.val, epochs=4, batch_size=16, seed=2)
    assert outcome.status == "ok" and outcome.history.loss == history.loss
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(outcome.model.state_dict()[key], value)
    assert outcome.train_accuracy == cnnx.evaluate(model, *data.train).accuracy


def test_a_diverging_run_is_an_outcome_not_an_exception():
    outcome = runs.execute(small(model="enhanced", optimizer="sgd", hyperparameters={"lr": 1e20}))
    assert outcome.status == "diverged" and outcome.diverged is not None


def test_an_experiment_configuration_is_a_spec_without_seed_and_device():
    config = RunConfig("x", "simple", hyperparameters={"lr": 0.01}, epochs=3)
    spec = config.spec(seed=4, device="cpu")
    assert isinstance(spec, RunSpec) and spec.seed == 4 and spec.model == "simple_cnn"
    assert spec.val_fraction == 0.2


def test_a_model_that_cannot_take_the_data_fails_before_anything_is_written(tmp_path):
    spec = small(model="toy_convnet", optimizer="sgd", hyperparameters={"lr": 0.1})
    with pytest.raises(ConfigError, match=r"\(1, 11, 11\).*\(1, 6, 6\)"):
        runs.execute(spec, run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_train_config_of_a_stored_run_reproduces_it_bit_for_bit(tmp_path):
    cli = CliRunner()
    first = cli.invoke(
        main,
        [
            "train",
            "-q",
            "--epochs",
            "6",
            "--batch-size",
            "16",
            "--seed",
            "3",
            "--model",
            "enhanced",
            "--output-dir",
            str(tmp_path / "a"),
        ],
    )
    assert first.exit_code == 0, first.output
    again = cli.invoke(main, ["train", "-q", "--config", str(tmp_path / "a" / "config.json"),
                              "--output-dir", str(tmp_path / "b")])  # fmt: skip
    assert again.exit_code == 0, again.output
    a = load_checkpoint(tmp_path / "a" / "last.npz")
    b = load_checkpoint(tmp_path / "b" / "last.npz")
    assert a.model_state.keys() == b.model_state.keys()
    for key, value in a.model_state.items():
        np.testing.assert_array_equal(value, b.model_state[key], err_msg=key)
    spec_a = json.loads((tmp_path / "a" / "config.json").read_text())
    spec_b = json.loads((tmp_path / "b" / "config.json").read_text())
    assert spec_a == spec_b


def test_flags_override_the_fields_of_a_config_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(small(seed=3).to_dict()))
    result = CliRunner().invoke(
        main,
        [
            "train",
            "-q",
            "--config",
            str(path),
            "--seed",
            "5",
            "--epochs",
            "2",
            "--output-dir",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = RunSpec.from_dict(json.loads((tmp_path / "r" / "config.json").read_text()))
    assert (saved.seed, saved.epochs, saved.hyperparameters["beta1"]) == (5, 2, 0.7)


def test_a_damaged_config_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "run.json"
    for text, message in [("{", "not valid JSON"), ("{}", "missing field 'dataset'"),
                          ('{"dataset": 3}', "missing field")]:  # fmt: skip
        path.write_text(text)
        result = CliRunner().invoke(main, ["train", "--config", str(path)])
        assert result.exit_code == 1, result.output
        assert f"error: {path}: " in result.output and message in result.output
        assert "Traceback" not in result.output


def test_a_spec_is_hashable_and_pickles_for_other_processes():
    import pickle

    a = small(seed=2)
    b = RunSpec.from_dict(json.loads(json.dumps(a.to_dict())))
    assert hash(a) == hash(b) and len({a, b}) == 1
    assert pickle.loads(pickle.dumps(a)) == a
