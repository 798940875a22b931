"""``cnnx devices`` and ``cnnx --version``."""

from __future__ import annotations

from click.testing import CliRunner

import cnnx
from cnnx.backends import gpu_status
from cnnx.cli import main


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert cnnx.__version__ in result.output


def test_devices_lists_the_cpu_and_each_gpu_or_why_none():
    result = CliRunner().invoke(main, ["devices"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("cpu ")
    count, reason, _ = gpu_status()
    if count == 0:
        assert lines[1] == f"cuda    not usable: {reason}"
    else:
        assert [line.split()[0] for line in lines[1:]] == [f"cuda:{i}" for i in range(count)]
