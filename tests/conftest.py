"""Shared fixtures: one test suite for NumPy and CuPy.

The ``device`` fixture runs a test once on the CPU (NumPy) and once on the
first GPU (CuPy). The GPU case carries the ``gpu`` marker and is skipped, with
the probe's reason, where no GPU is usable. Tests make inputs on the host with
NumPy, move them with ``device.asarray`` and compare results on the host.
"""

from __future__ import annotations

import pytest

import cnnx
from cnnx.backends import gpu_status


def _gpu_skip_reason() -> str | None:
    count, reason, _ = gpu_status()
    return None if count > 0 else f"no usable GPU: {reason}"


def pytest_collection_modifyitems(config, items):
    reason = _gpu_skip_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request) -> cnnx.Device:
    """The device under test: ``cpu`` (NumPy) or ``cuda`` (CuPy, GPU-marked)."""
    return cnnx.device(request.param)
