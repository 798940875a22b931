"""Tests of cnnx.experiment: grids, run files, tables, resume, divergence, workers, figures."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest

import cnnx
import cnnx.experiment as ce
from cnnx import datasets
from cnnx.experiment import report, runner
from cnnx.experiment.grid import Experiment, RunConfig, grid, parse_seeds, preset

EPOCHS = 3


def small_experiment(seeds=(0, 1), epochs=EPOCHS) -> Experiment:
    configs = [
        RunConfig("adam-fast", "simple", optimizer="adam", hyperparameters={"lr": 0.01},
                  epochs=epochs),
        RunConfig("sgd", "simple", optimizer="sgd", hyperparameters={"lr": 0.9}, epochs=epochs),
    ]  # fmt: skip
    return Experiment("small", tuple(configs), tuple(seeds))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def without_timing(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def quiet_log(lines):
    return lines.append


# --- the files of a small grid ----------------------------------------------------------


def test_small_grid_writes_every_file_with_one_row_per_run(tmp_path):
    lines: list[str] = []
    out = tmp_path / "out"
    result = ce.run_experiment(small_experiment(), out, log=lines.append)

    rows = read_csv(out / "runs.csv")
    assert [(r["config"], r["seed"]) for r in rows] == [
        ("adam-fast", "0"), ("adam-fast", "1"), ("sgd", "0"), ("sgd", "1"),
    ]  # fmt: skip
    for row in rows:
        assert row["status"] == "ok" and row["epochs"] == str(EPOCHS)
        assert row["train_samples"] == "78" and row["val_samples"] == "18"
        for name in ("train_accuracy", "val_accuracy", "all_accuracy"):
            assert 0.0 <= float(row[name]) <= 1.0
        assert float(row["seconds"]) > 0
    assert rows[0]["optimizer"] == "Adam(lr=0.01)"

    curves = read_csv(out / "curves.csv")
    assert len(curves) == 4 * EPOCHS
    assert [c["epoch"] for c in curves[:EPOCHS]] == ["1", "2", "3"]
    # The last epoch's validation accuracy is the run's final one.
    assert curves[EPOCHS - 1]["val_accuracy"] == rows[0]["val_accuracy"]

    run_files = sorted(p.name for p in (out / "runs").iterdir())
    assert run_files == [
        "adam-fast__seed0.json", "adam-fast__seed1.json", "sgd__seed0.json", "sgd__seed1.json",
    ]  # fmt: skip
    saved = json.loads((out / "runs" / "sgd__seed1.json").read_text())
    assert saved["seed"] == 1 and saved["status"] == "ok"
    assert saved["config"]["hyperparameters"] == {"lr": 0.9}
    assert len(saved["curves"]["loss"]) == EPOCHS

    summary = (out / "summary.md").read_text()
    assert summary == result.summary
    assert "| adam-fast | simple_cnn | Adam(lr=0.01) |" in summary
    assert "seed 0 | seed 1" in summary
    stats = result.mean_std("sgd")
    assert f"{stats[0]:.4f} ± {stats[1]:.4f}" in summary
    assert json.loads((out / "experiment.json").read_text())["seeds"] == [0, 1]
    assert len([line for line in lines if line.startswith("[")]) == 4  # one per run


def test_runs_are_reproducible_and_seeds_differ(tmp_path):
    a = ce.run_experiment(small_experiment(seeds=(0, 1)), quiet=True, in_process=True)
    b = ce.run_experiment(small_experiment(seeds=(1, 0)), quiet=True, in_process=True)
    key = lambda r: (r.config.name, r.seed)  # noqa: E731
    assert [key(r) for r in a.runs] == [key(r) for r in sorted(b.runs, key=key)]
    for x, y in zip(a.runs, sorted(b.runs, key=key), strict=True):
        assert x.curves == y.curves and x.val_accuracy == y.val_accuracy
    assert a.runs[0].curves["loss"] != a.runs[1].curves["loss"]  # seed 0 vs seed 1


def test_jobs_2_gives_the_same_numbers_as_jobs_1_and_as_in_process(tmp_path):
    modes = [("one", {"jobs": 1}), ("two", {"jobs": 2}), ("here", {"in_process": True})]
    for name, options in modes:
        ce.run_experiment(small_experiment(), tmp_path / name, quiet=True, plots=False, **options)
    one = tmp_path / "one"
    for other in (tmp_path / "two", tmp_path / "here"):
        assert without_timing(read_csv(one / "runs.csv")) == without_timing(
            read_csv(other / "runs.csv")
        )
        assert (one / "curves.csv").read_text() == (other / "curves.csv").read_text()


def test_worker_environment_limits_blas_threads_and_is_restored(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    import os

    with runner.single_threaded_blas():
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
        assert os.environ["OMP_NUM_THREADS"] == "3"  # the user's own setting wins
    assert "OPENBLAS_NUM_THREADS" not in os.environ
    assert os.environ["OMP_NUM_THREADS"] == "3"


# --- resume and overwrite -----------------------------------------------------------------


def test_resume_skips_finished_runs(tmp_path):
    out = tmp_path / "out"
    first = ce.run_experiment(small_experiment(), out, quiet=True, plots=False)
    before = without_timing(read_csv(out / "runs.csv"))
    (out / "runs" / "sgd__seed1.json").unlink()  # as if interrupted before this run ended

    lines: list[str] = []
    second = ce.run_experiment(small_experiment(), out, resume=True, plots=False, log=lines.append)
    assert "resuming: 3 of 4 runs already finished" in lines
    assert [line for line in lines if line.startswith("[")] == [
        line for line in lines if line.startswith("[4/4] sgd seed 1: ")
    ]  # only the missing run ran
    assert without_timing(read_csv(out / "runs.csv")) == before
    assert [r.val_accuracy for r in second.runs] == [r.val_accuracy for r in first.runs]

    lines.clear()
    ce.run_experiment(small_experiment(), out, resume=True, plots=False, log=lines.append)
    assert "resuming: 4 of 4 runs already finished" in lines
    assert not [line for line in lines if line.startswith("[")]  # nothing ran


def test_resume_refuses_a_run_file_from_another_configuration(tmp_path):
    out = tmp_path / "out"
    ce.run_experiment(small_experiment(), out, quiet=True, plots=False, in_process=True)
    changed = small_experiment(epochs=EPOCHS + 1)
    with pytest.raises(ce.RunFileError, match=r"adam-fast__seed0\.json.*epochs"):
        ce.run_experiment(changed, out, resume=True, quiet=True)


def test_resume_refuses_an_unreadable_run_file(tmp_path):
    out = tmp_path / "out"
    ce.run_experiment(small_experiment(seeds=(0,)), out, quiet=True, plots=False, in_process=True)
    (out / "runs" / "sgd__seed0.json").write_text("{not json")
    with pytest.raises(ce.RunFileError, match=r"sgd__seed0\.json is not a readable run record"):
        ce.run_experiment(small_experiment(seeds=(0,)), out, resume=True, quiet=True)


def test_existing_output_dir_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    ce.run_experiment(small_experiment(seeds=(0,)), out, quiet=True, plots=False, in_process=True)
    (out / "my-notes.txt").write_text("keep me")
    with pytest.raises(ce.OutputExistsError, match="--overwrite"):
        ce.run_experiment(small_experiment(seeds=(0,)), out, quiet=True)
    result = ce.run_experiment(small_experiment(seeds=(1,)), out, overwrite=True, quiet=True,
                               plots=False, in_process=True)  # fmt: skip
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "adam-fast__seed1.json", "sgd__seed1.json",
    ]  # fmt: skip
    assert (out / "my-notes.txt").read_text() == "keep me"
    assert len(result.runs) == 2


def test_interrupted_experiment_keeps_finished_runs_and_tables(tmp_path):
    out = tmp_path / "out"
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line.startswith("[2/4]"):
            raise KeyboardInterrupt  # Ctrl-C while the workers run the rest

    with pytest.raises(KeyboardInterrupt):
        ce.run_experiment(small_experiment(), out, jobs=2, plots=False, log=log)
    assert len(read_csv(out / "runs.csv")) == 2
    assert len(list((out / "runs").iterdir())) == 2
    assert "2 of 4 runs finished" in (out / "summary.md").read_text()
    assert len(read_csv(out / "curves.csv")) == 2 * EPOCHS
    assert any("--resume" in line for line in lines)
    assert not [p for p in out.rglob(".*tmp*")]  # no temporary files left behind

    ce.run_experiment(small_experiment(), out, resume=True, quiet=True, plots=False)
    assert len(read_csv(out / "runs.csv")) == 4


# --- divergence ---------------------------------------------------------------------------


def test_a_diverging_configuration_is_reported_not_fatal(tmp_path):
    configs = (
        RunConfig("ok", "enhanced", optimizer="adam", hyperparameters={"lr": 0.01}, epochs=4),
        # Any weight update this large overflows float32: the loss is not finite in epoch 2.
        RunConfig("explodes", "enhanced", optimizer="sgd", hyperparameters={"lr": 1e20}, epochs=4),
    )
    out = tmp_path / "out"
    result = ce.run_experiment(Experiment("div", configs, (0, 1)), out, quiet=True, jobs=2)
    exploded = [r for r in result.runs if r.config.name == "explodes"]
    assert [r.status for r in exploded] == ["diverged", "diverged"]
    for r in exploded:
        assert 1 <= r.diverged_epoch <= 4 and r.epochs == r.diverged_epoch - 1
        assert len(r.curves["loss"]) == r.epochs
    assert all(r.ok for r in result.runs if r.config.name == "ok")

    rows = read_csv(out / "runs.csv")
    assert [r["status"] for r in rows] == ["ok", "ok", "diverged", "diverged"]
    assert rows[2]["diverged_epoch"] == str(exploded[0].diverged_epoch)
    summary = (out / "summary.md").read_text()
    assert f"div@{exploded[0].diverged_epoch}" in summary
    assert "| explodes | enhanced_cnn | SGD(lr=1e+20) | – | – | – | – | 0 | 2 |" in summary
    assert "## Diverged runs" in summary
    assert result.mean_std("explodes") is None


# --- figures ------------------------------------------------------------------------------


def test_plots_are_written_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    result = ce.run_experiment(small_experiment(), out, quiet=True, in_process=True)
    for name in ("loss_curves.png", "accuracy.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert out / name in result.files


def test_missing_matplotlib_skips_the_figures_with_one_note(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    lines: list[str] = []
    out = tmp_path / "out"
    ce.run_experiment(small_experiment(seeds=(0,)), out, quiet=True, log=lines.append,
                      in_process=True)  # fmt: skip
    assert not (out / "loss_curves.png").exists() and not (out / "accuracy.png").exists()
    notes = [line for line in lines if "matplotlib" in line]
    assert len(notes) == 1 and "\n" not in notes[0] and "cnnx[plot]" in notes[0]
    assert (out / "summary.md").exists()


# --- the Python API ---------------------------------------------------------------------


def test_module_is_callable_and_takes_config_dicts():
    result = ce(
        [{"name": "a", "model": "simple", "optimizer": "rmsprop", "lr": 0.001, "rho": 0.9,
          "epochs": 2}],
        seeds=[3],
        quiet=True,
        in_process=True,
    )  # fmt: skip
    assert callable(ce) and isinstance(result, ce.ExperimentResult)
    (run,) = result.runs
    assert run.seed == 3 and run.config.hyperparameters == {"lr": 0.001, "rho": 0.9}
    assert run.config.model == "simple_cnn" and result.output_dir is None


def test_execute_matches_a_hand_written_run():
    config = RunConfig("x", "simple", optimizer="adam", hyperparameters={"lr": 0.01}, epochs=3)
    result = runner.execute(config, seed=4)
    X, y = datasets.load_digits6x6()
    train_idx, val_idx = datasets.stratified_split(y, 0.2, seed=4)
    model = cnnx.models.get("simple_cnn", seed=4)
    opt = cnnx.optim.Adam(model.named_parameters(), lr=0.01)
    history = cnnx.fit(
        model, opt, (X[train_idx], y[train_idx]), (X[val_idx], y[val_idx]), epochs=3, seed=4
    )
    assert result.curves["loss"] == history.loss
    assert result.val_accuracy == history.final.val_accuracy
    assert result.train_accuracy == cnnx.evaluate(model, X[train_idx], y[train_idx]).accuracy
    assert result.all_accuracy * 96 == pytest.approx(round(result.all_accuracy * 96))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"name": "a", "model": "nope", "lr": 0.1}, "unknown model"),
        ({"name": "a", "optimizer": "adam", "lr": 0.1, "rho": 0.9}, "adam takes no hyperparameter"),
        ({"name": "a", "optimizer": "sgd"}, "learning rate"),
        ({"name": "a", "lr": 0.1, "epochs": 0}, "epochs must be a positive integer"),
        ({"name": "a", "lr": 0.1, "val_fraction": 1.0}, r"val_fraction must be in \[0, 1\)"),
        ({"name": "a", "lr": 0.1, "dataset": "cifar"}, "unknown dataset"),
        ({"name": "a", "lr": 0.1, "dataset_options": {"noise": 0.1}}, "takes no option 'noise'"),
        ({"name": "a", "lr": 0.1, "colour": "red"}, "unknown keys"),
    ],
)
def test_bad_configurations_name_what_is_wrong(config, match):
    with pytest.raises(ValueError, match=match):
        RunConfig.from_dict(config)


def test_a_model_that_cannot_take_the_data_is_refused_before_any_run(tmp_path):
    bad = RunConfig("toy-on-digits", "toy_convnet", optimizer="sgd", hyperparameters={"lr": 0.1})
    with pytest.raises(ValueError, match=r"'toy-on-digits'.*\(1, 11, 11\).*\(1, 6, 6\)"):
        ce.run_experiment([bad], tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_configuration_names_must_differ_as_file_names():
    a = RunConfig("lr 0.1", lr := "simple", hyperparameters={"lr": 0.1})
    b = RunConfig("lr_0.1", lr, hyperparameters={"lr": 0.2})
    with pytest.raises(ValueError, match="same as file names"):
        Experiment("x", (a, b))


# --- grids, seeds, presets, statistics ----------------------------------------------------


def test_grid_is_a_product_and_pairs_hyperparameters_with_their_optimizers():
    configs = grid(
        ["simple", "enhanced"], ["adam", "rmsprop"],
        {"lr": [0.01, 0.001], "rho": [0.9], "beta1": [0.7]},
    )  # fmt: skip
    assert len(configs) == 8
    names = [c.name for c in configs]
    assert names[:2] == ["simple_cnn adam lr=0.01", "simple_cnn adam lr=0.001"]
    by_name = {c.name: c for c in configs}
    assert by_name["enhanced_cnn rmsprop lr=0.001"].hyperparameters == {"lr": 0.001, "rho": 0.9}
    assert by_name["simple_cnn adam lr=0.01"].hyperparameters == {"lr": 0.01, "beta1": 0.7}
    with pytest.raises(ValueError, match="rho applies to rmsprop, not to adam"):
        grid(["simple"], ["adam"], {"lr": [0.1], "rho": [0.9]})


def test_grid_over_model_options_names_the_varying_axis():
    configs = grid(["toy_convnet"], ["sgd"], {"lr": [0.01]}, model_options={"kernel_size": [3, 5]},
                   dataset="patterns", epochs=[2, 4])  # fmt: skip
    assert [c.name for c in configs] == [
        "toy_convnet sgd lr=0.01 kernel_size=3 epochs=2",
        "toy_convnet sgd lr=0.01 kernel_size=3 epochs=4",
        "toy_convnet sgd lr=0.01 kernel_size=5 epochs=2",
        "toy_convnet sgd lr=0.01 kernel_size=5 epochs=4",
    ]


@pytest.mark.parametrize(
    ("text", "seeds"), [("0-9", tuple(range(10))), ("3", (3,)), ("0,2, 5-6", (0, 2, 5, 6))]
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "5-2", "1,1", "-1"])
def test_parse_seeds_rejects_malformed_text(text):
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds(text)


def test_report_table5_preset_is_report_000s_setup():
    experiment = preset("report-table5")
    assert experiment.seeds == tuple(range(10))
    table = {
        c.name: (c.model, c.optimizer, c.hyperparameters, c.epochs, c.batch_size, c.val_fraction)
        for c in experiment.configs
    }
    adam = {"lr": 0.01, "beta1": 0.7, "beta2": 0.99}
    assert table == {
        "S-SGD": ("simple_cnn", "sgd", {"lr": 0.9}, 300, None, 0.2),
        "S-RMSprop": ("simple_cnn", "rmsprop", {"lr": 0.001, "rho": 0.9}, 300, None, 0.2),
        "S-Adam": ("simple_cnn", "adam", adam, 300, None, 0.2),
        "E-RMSprop": ("enhanced_cnn", "rmsprop", {"lr": 0.001, "rho": 0.9}, 300, None, 0.2),
        "E-Adam": ("enhanced_cnn", "adam", adam, 300, None, 0.2),
    }
    assert all(c.dataset == "digits6x6" and not c.dataset_options for c in experiment.configs)


def test_toy_presets_are_report_003s_sweeps():
    lr = preset("toy-lr")
    kernel = preset("toy-kernel")
    assert [c.hyperparameters["lr"] for c in lr.configs] == [0.001, 0.0001, 0.0002, 0.01]
    assert {c.model_options["kernel_size"] for c in lr.configs} == {5}
    assert [c.model_options["kernel_size"] for c in kernel.configs] == [3, 5, 7, 9]
    assert {c.hyperparameters["lr"] for c in kernel.configs} == {0.01}
    for c in lr.configs + kernel.configs:
        assert (c.model, c.optimizer, c.epochs, c.batch_size) == ("toy_convnet", "sgd", 500, 8)
        assert c.dataset == "patterns"


def test_population_std_reproduces_report_000s_s_sgd_row():
    # Table 4's S-SGD accuracies are 92/96 (six seeds) and 93/96 (four); Table 5 gives
    # 0.9625 ± 0.0051, which is the population standard deviation (ddof 0).
    mean, std = report.mean_std([92 / 96] * 6 + [93 / 96] * 4)
    assert f"{mean:.4f} ± {std:.4f}" == "0.9625 ± 0.0051"


def test_runs_csv_is_sorted_by_configuration_then_seed_whatever_the_finishing_order():
    experiment = small_experiment(seeds=(0, 1))
    result = ce.run_experiment(experiment, quiet=True, in_process=True)
    shuffled = list(reversed(result.runs))
    assert report.runs_csv(experiment, shuffled) == report.runs_csv(experiment, result.runs)
    rows = list(csv.DictReader(io.StringIO(report.runs_csv(experiment, shuffled))))
    assert [(r["config"], r["seed"]) for r in rows][:2] == [("adam-fast", "0"), ("adam-fast", "1")]


@pytest.mark.gpu
def test_gpu_runs_agree_with_cpu_runs():
    experiment = small_experiment(seeds=(0,))
    cpu = ce.run_experiment(experiment, quiet=True, device="cpu", in_process=True)
    gpu = ce.run_experiment(experiment, quiet=True, device="cuda")
    for a, b in zip(cpu.runs, gpu.runs, strict=True):
        assert b.device.startswith("cuda")
        assert a.curves["loss"] == pytest.approx(b.curves["loss"], rel=1e-3, abs=1e-4)
