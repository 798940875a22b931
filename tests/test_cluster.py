"""--dask flags and the Dask executor (cnnx.experiment.cluster)."""

from __future__ import annotations

import sys

import pytest

from cnnx.experiment.cluster import ClusterError, ClusterSpec, connect, require_distributed


def test_parse_the_three_spellings():
    assert ClusterSpec.parse("local:3") == ClusterSpec(local_workers=3)
    assert ClusterSpec.parse("tcp://10.0.0.5:8786") == ClusterSpec(address="tcp://10.0.0.5:8786")
    assert ClusterSpec.parse("node7:8786") == ClusterSpec(address="node7:8786")
    assert ClusterSpec.parse(None, "s.json") == ClusterSpec(scheduler_file="s.json")
    assert ClusterSpec.parse(None) is None


@pytest.mark.parametrize(
    ("dask", "scheduler_file", "fragment"),
    [
        ("local:0", None, "at least one worker"),
        ("local:two", None, "expected local:N"),
        ("http//x", None, "expected local:N"),
        ("local:2", "s.json", "not both"),
    ],
)
def test_bad_flags_are_one_line_errors(dask, scheduler_file, fragment):
    with pytest.raises(ClusterError, match=fragment):
        ClusterSpec.parse(dask, scheduler_file)


def test_missing_distributed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    with pytest.raises(ClusterError) as info:
        require_distributed("--dask")
    assert 'pip install "cnnx[cluster]"' in str(info.value)
    assert "--dask" in str(info.value)


def test_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("distributed")
    with pytest.raises(ClusterError) as info:
        connect(ClusterSpec.parse("tcp://127.0.0.1:9"), timeout=1)
    message = str(info.value)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in message
    assert "\n" not in message


def test_missing_scheduler_file(tmp_path):
    pytest.importorskip("distributed")
    path = tmp_path / "scheduler.json"
    with pytest.raises(ClusterError, match="no such file"):
        connect(ClusterSpec.parse(None, path))


def test_leaving_on_an_error_cancels_what_has_not_run():
    pytest.importorskip("distributed")
    import time

    futures = []
    with pytest.raises(KeyboardInterrupt):
        with connect(ClusterSpec.parse("local:1")) as executor:
            futures += [executor.submit(time.sleep, 0.2) for _ in range(20)]
            futures[0].result(timeout=60)
            raise KeyboardInterrupt  # Ctrl-C in the submitting process
    deadline = time.monotonic() + 10
    while not all(f.done() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.05)
    cancelled = sum(f.cancelled() for f in futures)
    assert cancelled >= 15, f"only {cancelled} of 20 pending calls were cancelled"


@pytest.mark.parametrize("command", ["experiment", "tune"])
def test_cli_flag_errors_before_any_cluster_starts(command):
    from click.testing import CliRunner

    from cnnx.cli.main import main

    extra = ["--param", "lr=uniform:0.1:0.2"] if command == "tune" else []
    runner = CliRunner()
    result = runner.invoke(main, [command, *extra, "--dask", "local:2", "--jobs", "2"])
    assert result.exit_code == 2 and "with --dask, drop it" in result.output
    result = runner.invoke(main, [command, *extra, "--dask", "somewhere"])
    assert result.exit_code == 1
    assert result.output.startswith("error: --dask 'somewhere': expected local:N")
