"""Shared fixtures: one test suite for NumPy and CuPy.

The ``device`` fixture runs a test once on the CPU (NumPy) and once on a GPU
(CuPy). The GPU case carries the ``gpu`` marker. Tests make inputs on the host
with NumPy, move them with ``device.asarray`` and compare results on the host;
``on_device(array, device)`` checks that a result really lives where it should.

Environment:
    CNNX_REQUIRE_GPU=1: no usable GPU is an error (pytest stops at collection)
        instead of a skip, so a broken CuPy install on a GPU machine cannot
        silently skip every GPU test.
    CNNX_TEST_DEVICE: the GPU the cuda case uses (default ``cuda``, i.e. ``cuda:0``);
        ``cuda:1`` tests a second GPU.

Where no GPU is usable, every ``gpu`` test is skipped with one reason, reported
as one line of pytest's ``-ra`` summary. To run the GPU tests without a GPU,
put the CuPy stand-in on the import path:
``PYTHONPATH=tests/support/fakecupy pytest -m gpu`` (see ``.ci/run``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import cnnx
from cnnx.backends import device_of, gpu_status

_REQUIRE_GPU = os.environ.get("CNNX_REQUIRE_GPU", "") not in ("", "0")
_GPU_SPEC = os.environ.get("CNNX_TEST_DEVICE", "cuda")


def _gpu_skip_reason() -> str | None:
    count, reason, _ = gpu_status()
    return None if count > 0 else f"no usable GPU: {reason}"


def running_on_stand_in() -> bool:
    """Whether ``cupy`` is the NumPy-backed stand-in of tests/support/fakecupy."""
    return "cupy_stand_in" in sys.modules


def pytest_report_header(config):
    count, reason, names = gpu_status()
    if count == 0:
        return f"cnnx GPU tests: skipped (no usable GPU: {reason})"
    what = "CuPy stand-in (NumPy, tests/support/fakecupy)" if running_on_stand_in() else "CuPy"
    return f"cnnx GPU tests: {what}, {count} device(s): {', '.join(names)}; cuda case {_GPU_SPEC}"


def pytest_collection_modifyitems(config, items):
    reason = _gpu_skip_reason()
    if reason is None:
        return
    if _REQUIRE_GPU:
        raise pytest.UsageError(f"CNNX_REQUIRE_GPU is set but there is {reason}")
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # Every gpu test skipped for want of a GPU reports the same place and reason,
    # so pytest's -ra summary folds them into a single line instead of one per file.
    if (
        report.skipped
        and item.get_closest_marker("gpu") is not None
        and isinstance(report.longrepr, tuple)
        and "no usable GPU" in str(report.longrepr[2])
    ):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        report.longrepr = (__file__, None, f"gpu-marked tests: {reason}")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request) -> cnnx.Device:
    """The device under test: ``cpu`` (NumPy) or a GPU (CuPy, GPU-marked).

    The test body runs with that GPU current (as code inside ``with dev:`` does),
    so on ``cuda:1`` a test's own arithmetic on its results runs where they live.
    """
    if request.param == "cpu":
        yield cnnx.device("cpu")
        return
    dev = cnnx.device(_GPU_SPEC)
    # The cuda case must really be CuPy on the intended GPU, or it tests nothing new.
    probe = dev.asarray(np.zeros(2, dtype=np.float32))
    assert dev.kind == "cuda" and dev.xp.__name__ == "cupy", dev
    assert type(probe) is dev.xp.ndarray and int(probe.device.id) == dev.index
    with dev:
        yield dev


def _on_device(array, dev: cnnx.Device) -> bool:
    """Whether ``array`` is an array of ``dev``'s module living on ``dev``."""
    if dev.kind == "cpu":
        return isinstance(array, np.ndarray)
    return isinstance(array, dev.xp.ndarray) and device_of(array) == dev


@pytest.fixture
def on_device():
    """``on_device(array, device)``: assert that ``array`` lives on ``device`` (any count)."""

    def check(*arrays_then_device):
        *arrays, dev = arrays_then_device
        for i, array in enumerate(arrays):
            assert _on_device(array, dev), (
                f"array {i} ({type(array).__module__}.{type(array).__name__}) is not on {dev!r}"
            )

    return check
