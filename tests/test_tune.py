"""cnnx tune: a search over the run definition, its files, shared studies, retraining."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

optuna = pytest.importorskip("optuna")

from click.testing import CliRunner  # noqa: E402

from cnnx import runs  # noqa: E402
from cnnx.cli.main import main  # noqa: E402
from cnnx.tune import SearchSpace, TuneError, tune  # noqa: E402

SPACE = ["lr=loguniform:1e-3:1e-1", "optimizer=choice:adam,sgd"]


def base(epochs: int = 5) -> runs.RunSpec:
    return runs.defaults("digits6x6").replace(epochs=epochs)


def test_a_search_writes_its_files_and_best_json_retrains_the_best_trial(tmp_path):
    out = tmp_path / "search"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["tune", "--epochs", "20", "--trials", "4", "--seeds", "0,1", "--output-dir", str(out),
            "--storage", storage, "--no-plots", "-q"]  # fmt: skip
    for text in SPACE:
        args += ["--param", text]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "## Best trial" in result.output
    lines = (out / "trials.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("number,state,value,val_loss,optimizer,lr,val_accuracy_seed0")
    assert len(lines) == 5 and all(",COMPLETE," in line for line in lines[1:])

    study = optuna.load_study(study_name="cnnx-tune", storage=storage)
    values = [t.value for t in study.trials]
    best = max(study.trials, key=lambda t: (t.value, -t.user_attrs["val_loss"]))
    assert best.value == max(values)
    saved = json.loads((out / "best.json").read_text(encoding="utf-8"))
    assert saved["hyperparameters"]["lr"] == best.params["lr"]
    assert saved["optimizer"] == best.params["optimizer"] and saved["seed"] == 0

    # The run definition retrains the best trial's seed-0 run, to the last bit.
    retrain = CliRunner().invoke(
        main, ["train", "--config", str(out / "best.json"), "--output-dir", str(tmp_path / "r")]
    )
    assert retrain.exit_code == 0, retrain.output
    last = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["val_accuracy"] == best.user_attrs["accuracies"][0]
    assert last["val_loss"] == best.user_attrs["losses"][0]


def test_random_search_draws_the_same_points_in_any_order():
    space = SearchSpace.parse(SPACE)
    first = tune(base(1), space, trials=3, sampler_seed=7, quiet=True)
    again = tune(base(1), space, trials=3, sampler_seed=7, quiet=True)
    other = tune(base(1), space, trials=3, sampler_seed=8, quiet=True)
    params = [t.params for t in first.study.trials]
    assert params == [t.params for t in again.study.trials]
    assert params != [t.params for t in other.study.trials]


def test_two_processes_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    command = [sys.executable, "-m", "cnnx", "tune", "--epochs", "3", "--trials", "3",
               "--storage", storage, "--study-name", "shared", "--no-plots", "-q"]  # fmt: skip
    for text in SPACE:
        command += ["--param", text]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    study = optuna.load_study(study_name="shared", storage=storage)
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(6))  # the sum of both, none lost, none twice
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    # Random search draws trial k's point from (seed, k): the two processes' points differ.
    points = {json.dumps(t.params, sort_keys=True) for t in study.trials}
    assert len(points) == 6


def test_a_stored_study_of_another_search_is_refused(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    tune(base(1), SearchSpace.parse(SPACE), trials=1, storage=storage, quiet=True)
    with pytest.raises(TuneError, match="searches a different space"):
        tune(base(1), SearchSpace.parse(["lr=uniform:0.1:0.2"]), trials=1, storage=storage,
             quiet=True)  # fmt: skip


def test_median_pruner_stops_unpromising_trials():
    space = SearchSpace.parse(["lr=loguniform:1e-4:3e-1"])
    result = tune(base(20), space, trials=12, prune=True, sampler_seed=1, quiet=True)
    states = [t.state.name for t in result.study.trials]
    assert "PRUNED" in states and "COMPLETE" in states
    for trial in result.study.trials:
        if trial.state.name == "PRUNED":
            assert trial.user_attrs["epochs"] < 20
            assert "pruned at seed 0" in trial.user_attrs["note"]


def test_missing_optuna_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    result = CliRunner().invoke(main, ["tune", "--param", "lr=uniform:0.1:0.2", "--trials", "1"])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert 'pip install "cnnx[tune]"' in result.output


def test_flag_errors_are_usage_errors():
    runner = CliRunner()
    result = runner.invoke(main, ["tune"])
    assert result.exit_code == 2 and "nothing to search" in result.output
    result = runner.invoke(main, ["tune", "--param", "lr=loguniform:0:1"])
    assert result.exit_code == 1 and "log scale needs LOW > 0" in result.output
    result = runner.invoke(main, ["tune", "no-such-preset"])
    assert result.exit_code == 2 and "textbook-mnist" in result.output
    result = runner.invoke(main, ["tune", "--param", "rho=uniform:0.5:0.9"])
    assert result.exit_code == 1 and "takes rho" in result.output


def test_plots_say_what_the_objective_is(tmp_path, monkeypatch):
    # QA: optimization_history.png's axis said Optuna's default "Objective Value"; the
    # reader of a cnnx search needs to know it is the mean validation accuracy.
    import matplotlib.pyplot as plt

    from cnnx.tune import report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-1, log=True), n_trials=4)
    labels = []
    real_close = plt.close

    def close(fig=None):
        labels.extend(ax.get_ylabel() for ax in fig.axes)
        labels.extend(ax.get_xlabel() for ax in fig.axes)
        return real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    written = report.write_plots(tmp_path, study, lambda line: None)
    assert len(written) == 2
    assert "Objective Value" not in " ".join(labels)
    assert any("mean validation accuracy" in label for label in labels)


def test_the_printed_retrain_command_runs_from_where_the_search_ran(tmp_path, monkeypatch):
    # QA: `cnnx tune ... --output-dir search` printed "retrain it: `cnnx train --config
    # best.json`", which fails from the directory the user is in (best.json is in search/).
    monkeypatch.chdir(tmp_path)
    args = ["tune", "--param", "lr=loguniform:1e-3:1e-1", "--epochs", "2", "--trials", "2",
            "--output-dir", "search", "--no-plots", "-q"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "retrain it: `cnnx train --config search/best.json`" in result.output
    retrain = CliRunner().invoke(main, ["train", "--config", "search/best.json", "-q"])
    assert retrain.exit_code == 0, retrain.output
