"""Experiment grids on a real local Dask cluster (worker processes, not threads).

Kept few and small: CI has two cores. One LocalCluster of two workers serves the
module; every grid's tables must equal those of ``jobs=1``, timing columns aside.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

import cnnx.experiment as ce
from cnnx import datasets
from cnnx.experiment import cluster
from cnnx.experiment.grid import Experiment, RunConfig

TIMING_COLUMNS = ("seconds", "device")
#: Epochs of the grid's runs: long enough (about half a second each) to kill a worker
#: in the middle of one.
LONG = 150


def grid(epochs: int, seeds=(0, 1), dataset_options=None) -> Experiment:
    options = dataset_options or {}
    configs = (
        RunConfig("adam", "simple", optimizer="adam", hyperparameters={"lr": 0.01},
                  epochs=epochs, dataset_options=options),
        RunConfig("sgd", "simple", optimizer="sgd", hyperparameters={"lr": 0.9},
                  epochs=epochs, dataset_options=options),
    )  # fmt: skip
    return Experiment("dask-grid", configs, tuple(seeds))


def rows_without_timing(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [
            {k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)
        ]


def summary_without_timing(path):
    """summary.md without its timing line and the s/run column of its first table."""
    lines = []
    timed_table = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("- device:"):
            continue
        if line.startswith("| configuration |"):
            timed_table = line.rstrip().endswith("| s/run |")
        if not line.startswith("|"):
            timed_table = False
        if timed_table:
            line = line.rstrip().rsplit("|", 2)[0] + "|"
        lines.append(line)
    return lines


def assert_same_tables(a, b):
    assert rows_without_timing(a / "runs.csv") == rows_without_timing(b / "runs.csv")
    assert (a / "curves.csv").read_bytes() == (b / "curves.csv").read_bytes()
    assert summary_without_timing(a / "summary.md") == summary_without_timing(b / "summary.md")


@pytest.fixture(scope="module")
def executor():
    with cluster.connect(cluster.ClusterSpec.parse("local:2")) as ex:
        yield ex


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The grids run the ordinary way: one spawned worker process."""
    out = tmp_path_factory.mktemp("reference") / "jobs1"
    ce.run_experiment(grid(LONG), out, jobs=1, plots=False, quiet=True)
    return out


def test_a_grid_on_dask_has_the_tables_of_jobs_1(executor, reference, tmp_path):
    lines: list[str] = []
    result = ce.run_experiment(
        grid(LONG), tmp_path / "dask", executor=executor, plots=False, log=lines.append
    )
    assert len(result.runs) == 4 and all(r.ok for r in result.runs)
    assert_same_tables(reference, tmp_path / "dask")
    assert "with 2 workers" in (tmp_path / "dask" / "summary.md").read_text(encoding="utf-8")


def test_a_worker_killed_mid_run_loses_nothing(executor, reference, tmp_path):
    client = executor.client
    pids = client.run(os.getpid)
    killed: list[str] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = [addr for addr, keys in client.processing().items() if keys and addr in pids]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    result = ce.run_experiment(
        grid(LONG), tmp_path / "dask", executor=executor, plots=False, quiet=True
    )
    killer.join(timeout=5)
    assert killed, "no worker was busy to kill"
    assert len(result.runs) == 4 and all(r.ok for r in result.runs)
    assert_same_tables(reference, tmp_path / "dask")
    # the nanny started a new worker process in the dead one's place
    deadline = time.monotonic() + 30
    while executor.worker_count() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert executor.worker_count() == 2


def test_workers_without_the_data_file_get_the_arrays(executor, tmp_path, monkeypatch):
    workbook = tmp_path / "digits.xlsx"
    shutil.copy(Path(datasets.__file__).parent / "digits6x6.xlsx", workbook)
    experiment = grid(20, seeds=(0,), dataset_options={"path": str(workbook)})
    ce.run_experiment(experiment, tmp_path / "local", jobs=1, plots=False, quiet=True)

    # As if the workers ran on machines without tmp_path: the submitter must send the data.
    monkeypatch.setattr(cluster.DaskExecutor, "workers_have_files", lambda self, paths: False)
    lines: list[str] = []
    executor.log = lines.append
    try:
        ce.run_experiment(
            experiment, tmp_path / "dask", executor=executor, plots=False, log=lines.append
        )
    finally:
        executor.log = None
    assert any("cannot read" in line and str(workbook) in line for line in lines)
    assert_same_tables(tmp_path / "local", tmp_path / "dask")


def test_a_search_on_dask_finds_what_it_finds_here(executor):
    pytest.importorskip("optuna")
    from cnnx import runs
    from cnnx.tune import SearchSpace, tune

    base = runs.defaults("digits6x6").replace(epochs=10)
    space = SearchSpace.parse(["lr=loguniform:1e-3:1e-1", "optimizer=choice:adam,sgd"])
    here = tune(base, space, trials=4, seeds=(0, 1), quiet=True)
    there = tune(base, space, trials=4, seeds=(0, 1), executor=executor, quiet=True)
    summary = [(t.params, t.value, t.user_attrs["losses"]) for t in here.study.trials]
    assert summary == [(t.params, t.value, t.user_attrs["losses"]) for t in there.study.trials]
    assert here.best.number == there.best.number


def test_gpu_runs_ask_for_the_gpu_resource(executor):
    address = executor.client.scheduler.address
    # The module's workers declare no GPU: a cuda grid is refused instead of waiting forever.
    with pytest.raises(cluster.ClusterError, match="offers a GPU"):
        cluster.connect(cluster.ClusterSpec(address=address), device="cuda")
    with cluster.connect(cluster.ClusterSpec.parse("local:1"), device="cuda:0") as gpu:
        resources = [w["resources"] for w in gpu.client.scheduler_info()["workers"].values()]
        assert resources == [{"GPU": 1}]
        future = gpu.submit(sum, [1, 2])
        assert future.result(timeout=60) == 3
        tasks = gpu.client.run_on_scheduler(
            lambda dask_scheduler: [t.resource_restrictions for t in dask_scheduler.tasks.values()]
        )
        assert {"GPU": 1} in tasks


def test_a_search_sends_the_data_to_workers_without_the_file(executor, tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    from cnnx import runs
    from cnnx.tune import SearchSpace, tune

    workbook = tmp_path / "digits.xlsx"
    shutil.copy(Path(datasets.__file__).parent / "digits6x6.xlsx", workbook)
    base = runs.defaults("digits6x6").replace(epochs=5, dataset_options={"path": str(workbook)})
    space = SearchSpace.parse(["lr=loguniform:1e-3:1e-1"])
    here = tune(base, space, trials=2, seeds=(0, 1), quiet=True)
    monkeypatch.setattr(cluster.DaskExecutor, "workers_have_files", lambda self, paths: False)
    lines: list[str] = []
    executor.log = lines.append
    try:
        there = tune(base, space, trials=2, seeds=(0, 1), executor=executor, quiet=True)
    finally:
        executor.log = None
    assert any("cannot read" in line for line in lines)
    assert [t.user_attrs["losses"] for t in here.study.trials] == [
        t.user_attrs["losses"] for t in there.study.trials
    ]
