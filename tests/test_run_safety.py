"""A user's runs are never lost (issue 11): overwrite, signals, locks, clean shutdown, bad input.

The signal and lock tests start real ``cnnx`` processes and signal or kill them.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cnnx.checkpoint import load_checkpoint
from cnnx.cli import main
from cnnx.datasets import write_idx
from cnnx.errors import RunLockedError
from cnnx.runs import RunDirectory
from cnnx.runs.directory import is_better

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")
QUICK = ["-q", "--batch-size", "16", "--seed", "1"]


def cli(*args: str, **kwargs):
    return CliRunner().invoke(main, list(args), **kwargs)


def train(*args: str):
    result = cli("train", *QUICK, *args)
    assert result.exit_code == 0, result.output
    return result


def start(*args: str, cwd: Path) -> subprocess.Popen:
    """A real ``cnnx`` process, with Ctrl-C's default handling even if ours ignores it."""
    return subprocess.Popen(
        [sys.executable, "-m", "cnnx", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def epochs_logged(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".lock"}


# --- --overwrite -------------------------------------------------------------------------


def test_overwrite_keeps_the_old_run_when_the_new_one_fails_to_start(tmp_path):
    train("--epochs", "3", "--output-dir", str(tmp_path / "r"))
    before = files(tmp_path / "r")
    bad = tmp_path / "bad.xlsx"
    bad.write_text("not a workbook")
    result = cli("train", "--overwrite", "--data", str(bad), "--output-dir", str(tmp_path / "r"))
    assert result.exit_code == 1 and "bad.xlsx" in result.output
    assert files(tmp_path / "r") == before


def test_overwrite_restores_the_old_run_when_the_new_one_fails_in_its_first_epoch(
    tmp_path, monkeypatch
):
    train("--epochs", "3", "--output-dir", str(tmp_path / "r"))
    before = files(tmp_path / "r")

    def disk_trouble(self, record):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(RunDirectory, "append_metrics", disk_trouble)
    result = cli("train", *QUICK, "--epochs", "5", "--overwrite", "--output-dir",
                 str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 1
    assert files(tmp_path / "r") == before
    assert not (tmp_path / "r" / ".replaced-run").exists()


def test_overwrite_replaces_the_run_once_the_new_one_has_a_checkpoint(tmp_path):
    train("--epochs", "3", "--output-dir", str(tmp_path / "r"))
    (tmp_path / "r" / "notes.txt").write_text("mine")
    train("--epochs", "2", "--overwrite", "--output-dir", str(tmp_path / "r"))
    assert load_checkpoint(tmp_path / "r" / "last.npz").epoch == 2
    assert epochs_logged(tmp_path / "r") == 2
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "r" / ".replaced-run").exists()


def test_overwrite_help_says_what_it_replaces_and_when():
    text = " ".join(cli("train", "--help").output.split())
    assert "config.json, metrics.jsonl, last.npz, best.npz" in text
    assert "until the new one has finished its first epoch" in text
    text = " ".join(cli("experiment", "--help").output.split())
    assert "deleted only after the data and every configuration have been checked" in text


def test_experiment_overwrite_keeps_finished_runs_when_the_new_data_is_bad(tmp_path):
    out = tmp_path / "e"
    grid = ["experiment", "--model", "simple", "--lr", "0.01", "--epochs", "2", "--seeds",
            "0", "-q", "--no-plots", "--output-dir", str(out)]  # fmt: skip
    assert cli(*grid).exit_code == 0
    before = {p.name: p.read_bytes() for p in (out / "runs").iterdir()}
    bad = tmp_path / "bad.xlsx"
    bad.write_text("not a workbook")
    result = cli(*grid, "--overwrite", "--data", str(bad))
    assert result.exit_code == 1 and "bad.xlsx" in result.output
    assert {p.name: p.read_bytes() for p in (out / "runs").iterdir()} == before


# --- failing before the first epoch ------------------------------------------------------


def test_a_model_that_does_not_fit_the_data_creates_nothing(tmp_path):
    result = cli("train", "--model", "mlp", "--output-dir", str(tmp_path / "r"))
    assert result.exit_code == 1 and "mlp" in result.output and "(1, 6, 6)" in result.output
    assert not (tmp_path / "r").exists()


def test_a_directory_without_a_finished_epoch_is_reused_without_overwrite(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")  # what a run that failed early left
    (run_dir / "metrics.jsonl").write_text("")
    train("--epochs", "2", "--output-dir", str(run_dir))
    assert load_checkpoint(run_dir / "last.npz").epoch == 2


def test_a_directory_with_a_finished_epoch_still_needs_overwrite(tmp_path):
    train("--epochs", "2", "--output-dir", str(tmp_path / "r"))
    result = cli("train", "--epochs", "2", "--output-dir", str(tmp_path / "r"))
    assert result.exit_code == 1 and "already holds a run" in result.output


# --- Ctrl-C and SIGTERM ------------------------------------------------------------------


@posix_only
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_a_checkpoint_write_comes_after_it(tmp_path, monkeypatch, sig):
    import cnnx
    from cnnx.runs import directory
    from cnnx.runs.signals import Terminated, terminate_raises

    real_save = directory.save_checkpoint
    written = []

    def save_checkpoint(target, *args, **kwargs):
        os.kill(os.getpid(), sig)  # arrives now, while the archive is to be written
        time.sleep(0.01)
        real_save(target, *args, **kwargs)
        written.append(target)

    monkeypatch.setattr(directory, "save_checkpoint", save_checkpoint)
    model = cnnx.models.get("simple_cnn", seed=0)
    folder = RunDirectory.open_new(tmp_path / "r", overwrite=False)
    try:
        with terminate_raises(), pytest.raises(KeyboardInterrupt) as info:
            folder.save("last.npz", model, None, {}, epoch=4)
    finally:
        folder.close()
    assert written == [tmp_path / "r" / "last.npz"]  # the write ran to its end first
    assert isinstance(info.value, Terminated) == (sig == signal.SIGTERM)
    assert load_checkpoint(tmp_path / "r" / "last.npz").epoch == 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_during_a_failing_checkpoint_write_is_not_lost(tmp_path, monkeypatch):
    import cnnx
    from cnnx.runs import directory

    def save_checkpoint(target, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(directory, "save_checkpoint", save_checkpoint)
    folder = RunDirectory.open_new(tmp_path / "r", overwrite=False)
    try:
        with pytest.raises(KeyboardInterrupt):
            folder.save("last.npz", cnnx.models.get("simple_cnn", seed=0), None, {}, epoch=1)
    finally:
        folder.close()


def test_an_interruption_after_a_metrics_line_keeps_the_metrics_to_the_checkpoint(
    tmp_path, monkeypatch
):
    import importlib

    from cnnx import runs
    from cnnx.runs.signals import RunInterrupted

    execute_module = importlib.import_module("cnnx.runs.execute")  # runs.execute is the function

    real = execute_module._Snapshot

    def snapshot(model, optimizer, rng, epoch):
        if epoch == 3:  # epoch 3's metrics line is written; Ctrl-C before its snapshot
            raise KeyboardInterrupt
        return real(model, optimizer, rng, epoch)

    monkeypatch.setattr(execute_module, "_Snapshot", snapshot)
    spec = runs.defaults("digits6x6").replace(epochs=10, batch_size=16, seed=1)
    run_dir = tmp_path / "r"
    with pytest.raises(RunInterrupted) as info:
        runs.execute(spec, run_dir=run_dir, save_every=1000)
    assert info.value.epoch == 2
    assert load_checkpoint(run_dir / "last.npz").epoch == 2 == epochs_logged(run_dir)


@posix_only
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("save_every", [[], ["--save-every", "1000"]])
def test_a_signal_saves_the_last_finished_epoch_for_resume(tmp_path, sig, status, save_every):
    run_dir = tmp_path / "r"
    proc = start("train", *QUICK, "--epochs", "100000", *save_every, "--output-dir", "r",
                 cwd=tmp_path)  # fmt: skip
    try:
        # 4 lines, so that 3 epochs remain even when the signal lands between an epoch's
        # metrics line and its snapshot, and the run keeps the metrics to the snapshot.
        wait_for(lambda: epochs_logged(run_dir) >= 4 or proc.poll() is not None, what="epochs")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, err
    saved = load_checkpoint(run_dir / "last.npz").epoch
    assert saved == epochs_logged(run_dir) >= 3
    assert f"epoch {saved} is saved in" in err and "cnnx train --resume r" in err
    result = cli("train", "--resume", str(run_dir), "--epochs", str(saved + 2), "-q")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run_dir / "last.npz").epoch == saved + 2


# --- locks -------------------------------------------------------------------------------


@posix_only
def test_a_run_directory_in_use_is_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / "r"
    proc = start("train", *QUICK, "--epochs", "100000", "--output-dir", "r", cwd=tmp_path)
    try:
        wait_for(lambda: epochs_logged(run_dir) >= 2 or proc.poll() is not None, what="epochs")
        for args in (["--resume", str(run_dir), "--epochs", "200000"],
                     ["--overwrite", "--output-dir", str(run_dir)]):  # fmt: skip
            result = cli("train", *args)
            assert result.exit_code == 1, result.output
            assert f"in use by process {proc.pid}" in result.output
            assert len(result.output.strip().splitlines()) == 1
    finally:
        proc.kill()  # SIGKILL: nothing is cleaned up, and yet no stale lock remains
        proc.wait()
    done = load_checkpoint(run_dir / "last.npz").epoch
    result = cli("train", "-q", "--resume", str(run_dir), "--epochs", str(done + 1))
    assert result.exit_code == 0, result.output


@posix_only
def test_two_processes_cannot_hold_one_lock(tmp_path):
    from cnnx.utils.output_dir import DirectoryLock

    code = (
        "import sys, time; from cnnx.utils.output_dir import DirectoryLock; "
        f"DirectoryLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"in use by process {proc.pid}"):
            DirectoryLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()
    with DirectoryLock(tmp_path):
        pass


# --- experiments: locks and clean shutdown ------------------------------------------------


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent has not collected it


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_stopping_an_experiment_stops_its_workers_and_resource_tracker(tmp_path, how):
    proc = start("experiment", "--model", "simple", "--lr", "0.01", "--epochs", "1000000",
                 "--seeds", "0-1", "--jobs", "2", "-q", "--no-plots", "--output-dir", "e",
                 cwd=tmp_path)  # fmt: skip
    helpers: set[int] = set()
    try:
        # Two workers and the resource tracker: three descendants, all Python processes.
        wait_for(lambda: len(_descendants(proc.pid)) >= 3 or proc.poll() is not None,
                 what="worker processes")  # fmt: skip
        time.sleep(1.0)
        helpers = _descendants(proc.pid)
        assert proc.poll() is None and len(helpers) >= 3
        if how == "sigterm":
            result = cli("experiment", "--resume", "--output-dir", str(tmp_path / "e"))
            assert result.exit_code == 1 and f"in use by process {proc.pid}" in result.output
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
            assert proc.returncode == 143
        else:
            proc.kill()
            proc.wait()
        wait_for(lambda: not any(_alive(p) for p in helpers), timeout=20,
                 what="workers and the resource tracker to exit")  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
        for pid in helpers | _descendants(proc.pid):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- files read back ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "config.json: not valid JSON"),
        ("{}", "config.json: missing field 'dataset'"),
        ("[]", "config.json: expected a JSON object"),
        ('{"epochs": "many"}', "config.json: epochs must be a positive integer, got 'many'"),
    ],
)
def test_a_damaged_config_json_is_one_line_naming_file_and_field(tmp_path, text, message):
    train("--epochs", "2", "--output-dir", str(tmp_path / "r"))
    path = tmp_path / "r" / "config.json"
    if text.startswith('{"epochs"'):
        text = json.dumps({**json.loads(path.read_text()), "epochs": "many"})
    path.write_text(text)
    result = cli("train", "--resume", str(tmp_path / "r"), "--epochs", "4")
    assert result.exit_code == 1
    assert message in result.output and str(path) in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_damaged_metrics_file_is_one_line_naming_file_and_line(tmp_path):
    train("--epochs", "2", "--output-dir", str(tmp_path / "r"))
    path = tmp_path / "r" / "metrics.jsonl"
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1].replace('"loss"', '"lost"') + "\n")
    result = cli("train", "--resume", str(tmp_path / "r"), "--epochs", "4")
    assert result.exit_code == 1
    assert f"{path}, line 2: field 'loss' must be a number" in result.output


def test_a_damaged_experiment_file_is_one_line_naming_it(tmp_path):
    out = tmp_path / "e"
    grid = ["experiment", "--model", "simple", "--lr", "0.01", "--epochs", "2", "--seeds", "0",
            "-q", "--no-plots", "--output-dir", str(out)]  # fmt: skip
    assert cli(*grid).exit_code == 0
    (out / "experiment.json").write_text('{"name": "custom", "configs": [{"name": 3}]}')
    result = cli("experiment", "--resume", "--output-dir", str(out))
    assert result.exit_code == 2 and "experiment.json" in result.output
    assert "Traceback" not in result.output


# --- paths -------------------------------------------------------------------------------


def test_data_paths_are_stored_absolute_and_compared_resolved(tmp_path, monkeypatch):
    from cnnx.datasets import load_digits6x6, write_digits6x6

    X, y = load_digits6x6()
    (tmp_path / "data").mkdir()
    write_digits6x6(tmp_path / "data" / "book.xlsx", X, y)
    monkeypatch.chdir(tmp_path)
    train("--epochs", "2", "--data", "data/book.xlsx", "--output-dir", "r")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["dataset_options"]["path"] == str((tmp_path / "data" / "book.xlsx").resolve())
    absolute = str(tmp_path / "data" / ".." / "data" / "book.xlsx")
    train("--resume", "r", "--epochs", "3", "--data", absolute)
    monkeypatch.chdir(tmp_path / "data")
    result = cli("evaluate", str(tmp_path / "r" / "last.npz"))
    assert result.exit_code == 0, result.output


# --- MNIST evaluation --------------------------------------------------------------------


def _fake_mnist(directory: Path, n_train: int = 40, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{split}-images-idx3-ubyte",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))  # fmt: skip
        write_idx(directory / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)


def test_evaluating_an_mnist_checkpoint_needs_only_the_test_files(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNX_MNIST_MIRRORS", "http://127.0.0.1:9/")
    mnist = tmp_path / "mnist"
    _fake_mnist(mnist)
    train("--dataset", "mnist", "--data-dir", str(mnist), "--epochs", "1", "--output-dir",
          str(tmp_path / "r"))  # fmt: skip
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (mnist / name).unlink()
    result = cli("evaluate", str(tmp_path / "r" / "last.npz"))
    assert result.exit_code == 0, result.output
    assert "MNIST test (20 images), test split: 20 samples" in result.output
    assert "train" not in result.output.split("data", 1)[1].splitlines()[0]


# --- best.npz ----------------------------------------------------------------------------


def test_best_breaks_accuracy_ties_on_validation_loss():
    assert is_better(0.9, 0.30, (0.9, 0.31)) and not is_better(0.9, 0.31, (0.9, 0.30))
    assert is_better(0.95, 9.0, (0.9, 0.1)) and not is_better(0.85, 0.0, (0.9, 0.1))


def test_best_npz_is_the_epoch_with_best_accuracy_then_lowest_loss(tmp_path):
    train("--epochs", "60", "--output-dir", str(tmp_path / "r"))
    rows = [
        json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    ]
    top = max(r["val_accuracy"] for r in rows)
    tied = [r for r in rows if r["val_accuracy"] == top]
    assert len(tied) > 1  # the case this rule is for (18 validation samples)
    expected = min(tied, key=lambda r: (r["val_loss"], r["epoch"]))["epoch"]
    assert expected != tied[0]["epoch"]
    assert load_checkpoint(tmp_path / "r" / "best.npz").epoch == expected


# --- disk full ---------------------------------------------------------------------------


def test_disk_full_names_the_file_and_the_intact_checkpoint(tmp_path, monkeypatch):
    import cnnx.runs.directory as directory

    original = directory.save_checkpoint

    def fill_up(path, model, optimizer=None, *, epoch=None, **kwargs):
        if epoch == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(path, model, optimizer, epoch=epoch, **kwargs)

    monkeypatch.setattr(directory, "save_checkpoint", fill_up)
    result = cli("train", *QUICK, "--epochs", "5", "--save-every", "1", "--val-fraction", "0",
                 "--output-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 1
    last = tmp_path / "r" / "last.npz"
    assert f"could not write {last}: the disk is full" in result.output
    assert f"the last checkpoint, {last} (epoch 2), is intact" in result.output
    assert load_checkpoint(last).epoch == 2


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((2, 1, 6, 6), np.nan, dtype=np.float32), "NaN or infinite"),
        (np.zeros((0, 1, 6, 6), dtype=np.float32), "holds no samples"),
    ],
)
def test_predict_refuses_non_finite_or_empty_input(tmp_path, array, message):
    train("--epochs", "2", "--output-dir", str(tmp_path / "r"))
    np.save(tmp_path / "x.npy", array)
    result = cli("predict", str(tmp_path / "r" / "last.npz"), str(tmp_path / "x.npy"))
    assert result.exit_code == 1
    assert "x.npy: " in result.output and message in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--val-fraction", "0.001"], "--val-fraction 0.001"),
        (["--train-limit", "3"], "--train-limit 3"),
        (["--lr", "inf"], "--lr inf"),
        (["--lr", "nan"], "--lr nan"),
        (["--lr", "0"], "--lr 0"),
    ],
)
def test_flags_that_cannot_work_are_named(flags, message):
    result = cli("train", "--epochs", "1", *flags)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_too_small_split_flags_say_the_smallest_value_that_works():
    result = cli("train", "--epochs", "1", "--val-fraction", "0.001")
    assert "smallest value that works is 0.0157" in result.output  # 0.5 / 32 per class
    result = cli("train", "--epochs", "1", "--train-limit", "3")
    assert "the smallest limit that works with val_fraction 0.2 is" in result.output
    smallest = int(result.output.split("is ")[-1].split()[0].rstrip("."))
    assert cli("train", "-q", "--epochs", "1", "--train-limit", str(smallest)).exit_code == 0
    assert cli("train", "-q", "--epochs", "1", "--train-limit", str(smallest - 1)).exit_code == 2


# --- what a new user sees ----------------------------------------------------------------


def test_the_summary_says_how_many_samples_were_read_even_when_quiet():
    result = cli("train", "-q", "--epochs", "1")
    assert "96 samples read" in result.stdout


def test_without_output_dir_the_summary_says_nothing_was_kept_and_how_to_keep_it(tmp_path):
    assert "nothing: pass --output-dir DIR" in cli("train", "-q", "--epochs", "1").stdout
    result = cli("train", "-q", "--epochs", "1", "--output-dir", str(tmp_path / "r"))
    assert f"saved to        {tmp_path / 'r'} (config.json" in result.stdout


def test_one_epoch_is_singular():
    result = cli("train", "--epochs", "1")
    assert ", 1 epoch, on cpu" in result.stderr and "1 epochs" not in result.output


def test_the_progress_bar_keeps_validation_metrics_at_80_columns(monkeypatch):
    from cnnx.utils.progress import Progress

    monkeypatch.setenv("COLUMNS", "80")
    bar = Progress(300, "train", "epochs", enabled=False)
    bar.update(120)
    bar.set_postfix("epoch 120  loss 1.0751  acc 0.6538  val_loss 1.0698  val_acc 0.8889")
    line = bar.format_line(bar._start + 3.0, 80)
    assert len(line) <= 79 and line.endswith("val_acc 0.8889")


def test_a_long_evaluation_shows_progress_off_a_terminal(tmp_path, monkeypatch):
    from cnnx.utils import progress

    train("--epochs", "2", "--output-dir", str(tmp_path / "r"))
    clock = {"t": 0.0}

    def eleven_seconds_a_call():
        clock["t"] += 11.0
        return clock["t"]

    monkeypatch.setattr(progress, "_now", eleven_seconds_a_call)
    result = cli("evaluate", str(tmp_path / "r" / "last.npz"), "--split", "all",
                 "--batch-size", "10")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("evaluate: ")]
    assert [line.split()[1] for line in lines] == [f"{10 * k}/96" for k in range(1, 10)]
    whole = cli("evaluate", str(tmp_path / "r" / "last.npz"), "--split", "all")
    assert whole.stdout.splitlines()[3:5] == result.stdout.splitlines()[3:5]  # loss, accuracy


def test_a_run_replaced_by_a_killed_overwrite_is_put_back_on_resume(tmp_path):
    train("--epochs", "3", "--output-dir", str(tmp_path / "r"))
    before = files(tmp_path / "r")
    # What a `--overwrite` killed (SIGKILL) during its first epoch leaves behind.
    (tmp_path / "r" / ".replaced-run").mkdir()
    for name in before:
        os.replace(tmp_path / "r" / name, tmp_path / "r" / ".replaced-run" / name)
    (tmp_path / "r" / "config.json").write_text("{}")
    result = cli("train", "-q", "--resume", str(tmp_path / "r"), "--epochs", "4")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "r" / "last.npz").epoch == 4
    assert not (tmp_path / "r" / ".replaced-run").exists()


def test_a_checkpoints_stored_run_is_read_back_through_the_spec(tmp_path):
    import cnnx
    from cnnx.checkpoint import save_checkpoint

    model = cnnx.models.get("simple_cnn", seed=0)
    good = {**cnnx.runs.defaults("digits6x6").to_dict(), "seed": 4}
    save_checkpoint(tmp_path / "good.npz", model, config=good)
    save_checkpoint(tmp_path / "script.npz", model, config={"note": "from my notebook"})
    save_checkpoint(tmp_path / "bad.npz", model, config={**good, "epochs": "x"})
    for name in ("good", "script"):
        result = cli("evaluate", str(tmp_path / f"{name}.npz"))
        assert result.exit_code == 0, result.output
    result = cli("evaluate", str(tmp_path / "bad.npz"))
    assert result.exit_code == 1
    assert "bad.npz (its stored run configuration): epochs must be a positive integer" in (
        result.output
    )
