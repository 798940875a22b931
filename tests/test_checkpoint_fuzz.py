"""Property-based tests: the checkpoint loader on random and mutated files.

Every outcome must be a loaded checkpoint whose model can be rebuilt, or a
CheckpointError with a message; never another exception, never a hang. A damaged file
that still loads must hold exactly the original's contents (or, for a deliberate
change, exactly what was changed). Temporary files live in folders removed after use.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cnnx
from cnnx.checkpoint import META_KEY, load_checkpoint, save_checkpoint

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@contextlib.contextmanager
def _scratch_dir():
    """A temporary directory that is removed afterwards, whatever happens."""
    with tempfile.TemporaryDirectory(prefix="cnnx-fuzz-") as name:
        yield Path(name)


def _valid_bytes() -> bytes:
    """A real checkpoint: SimpleCNN, Adam after one step, a generator state."""
    model = cnnx.models.get("simple_cnn", seed=0)
    for _, param in model.named_parameters():  # non-zero moments for Adam's state
        param.grad[...] = 0.01
    opt = cnnx.optim.Adam(model.named_parameters(), lr=0.01)
    opt.step()
    with _scratch_dir() as directory:
        path = directory / "valid.npz"
        save_checkpoint(path, model, opt, rng=np.random.default_rng(0), epoch=1, step=1)
        return path.read_bytes()


VALID = _valid_bytes()


@dataclass
class Loaded:
    """A damaged file that loaded: the checkpoint and what it rebuilt."""

    checkpoint: Any
    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, Any] | None
    rng_state: dict[str, Any] | None


def outcome(data: bytes) -> Loaded | str:
    """``"error"`` (a CheckpointError with a message) or what loaded."""
    with _scratch_dir() as directory:
        path = directory / "case.npz"
        path.write_bytes(data)
        try:
            checkpoint = load_checkpoint(path)
            model = checkpoint.build_model()
            optimizer = None
            if checkpoint.meta.get("optimizer"):
                optimizer = checkpoint.build_optimizer(model)
            rng_state = None
            if checkpoint.meta.get("rng") is not None:  # what --resume restores
                rng_state = checkpoint.make_rng().bit_generator.state
        except cnnx.CheckpointError as exc:
            assert str(exc), "a CheckpointError without a message"
            return "error"
    return Loaded(
        checkpoint,
        model.state_dict(),
        None if optimizer is None else optimizer.state_dict(),
        rng_state,
    )


ORIGINAL = outcome(VALID)


def assert_same_arrays(actual: dict, expected: dict, what: str) -> None:
    assert sorted(actual) == sorted(expected), what
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_same_arrays(actual[key], value, f"{what}/{key}")
        elif isinstance(value, np.ndarray):
            assert actual[key].dtype == value.dtype, f"{what}/{key}"
            np.testing.assert_array_equal(actual[key], value, err_msg=f"{what}/{key}")
        else:
            assert actual[key] == value, f"{what}/{key}"


def assert_original(loaded: Loaded, *, except_meta: str | None = None) -> None:
    """A damaged copy that still loads must give exactly the original's contents."""
    assert_same_arrays(loaded.model_state, ORIGINAL.model_state, "model")
    assert_same_arrays(loaded.optimizer_state, ORIGINAL.optimizer_state, "optimizer")
    assert loaded.rng_state == ORIGINAL.rng_state
    meta, original = dict(loaded.checkpoint.meta), dict(ORIGINAL.checkpoint.meta)
    if except_meta is not None:
        meta.pop(except_meta, None)
        original.pop(except_meta, None)
    assert meta == original


def test_the_original_loads_and_holds_real_state():
    assert isinstance(ORIGINAL, Loaded)
    assert ORIGINAL.checkpoint.epoch == 1 and ORIGINAL.optimizer_state["step_count"] == 1
    moments = ORIGINAL.optimizer_state["state"]
    assert any(np.any(entry["m"] != 0) for entry in moments.values())


def test_fuzzing_leaves_no_temporary_folders(tmp_path):
    # In a fresh process whose temporary directory is tmp_path: importing this module
    # (which builds VALID) and loading good and bad files must leave nothing there.
    tests_dir = Path(__file__).resolve().parent
    code = (
        f"import sys; sys.path.insert(0, {str(tests_dir)!r}); import test_checkpoint_fuzz as t; "
        "t.outcome(t.VALID); t.outcome(b'junk'); t.outcome(t.VALID[:100])"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    result = outcome(data)
    assert result == "error" or data == VALID


@SETTINGS
@given(st.integers(0, len(VALID) - 1), st.integers(0, 255))
def test_one_byte_changed(position, value):
    data = bytearray(VALID)
    data[position] = value
    result = outcome(bytes(data))
    if result != "error":  # a byte no reader looks at (a timestamp, a local-header CRC)
        event("loaded")
        assert_original(result)


@SETTINGS
@given(st.integers(0, len(VALID)))
def test_truncated(length):
    result = outcome(VALID[:length])
    assert result == "error" or length == len(VALID)
    if result != "error":
        assert_original(result)


def _rewrite(mutate) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(VALID)) as src, zipfile.ZipFile(out, "w") as dst:
        members = {info.filename: src.read(info.filename) for info in src.infolist()}
        for name, data in mutate(members).items():
            dst.writestr(name, data)
    return out.getvalue()


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@SETTINGS
@given(
    st.sampled_from(
        ["model", "training", "optimizer", "rng", "format_version", "module_rngs", "format"]
    ),
    json_values,
)
def test_metadata_fields_replaced(field, value):
    def mutate(members):
        meta = json.loads(str(np.load(io.BytesIO(members[f"{META_KEY}.npy"]))))
        meta[field] = value
        members[f"{META_KEY}.npy"] = _npy(np.array(json.dumps(meta)))
        return members

    result = outcome(_rewrite(mutate))
    if result != "error":
        event(f"loaded with {field} replaced")
        assert result.checkpoint.meta[field] == json.loads(json.dumps(value))
        # a replaced generator state must be the state the generators now have
        if field == "rng":
            assert result.rng_state == value
        if field in ("model", "optimizer", "rng", "module_rngs"):
            # what these fields describe (the model to build, the optimizer, generator
            # states) changed, and the rest must still be the original's
            assert_same_arrays(result.model_state, ORIGINAL.model_state, "model")
        else:
            assert_original(result, except_meta=field)


arrays = st.sampled_from(
    [
        np.zeros(3, dtype=np.float32),
        np.zeros((3, 1, 3, 3), dtype=np.float64),
        np.array(["text"]),
        np.array([1 + 2j]),
        np.zeros((), dtype=np.int8),
        np.array([object()], dtype=object),
    ]
)


@SETTINGS
@given(
    st.sampled_from(
        ["model/0.weight", "model/0.bias", "optimizer/0.weight/m", "model/extra", "junk"]
    ),
    arrays,
)
def test_arrays_replaced_or_added(name, array):
    def mutate(members):
        members[f"{name}.npy"] = _npy(array)
        return members

    result = outcome(_rewrite(mutate))
    if result != "error":
        # whatever loaded holds the new array where it was put, the original elsewhere
        event(f"loaded with {name} replaced")
        kind, _, rest = name.partition("/")
        if kind == "model":
            cast = array.astype(ORIGINAL.model_state[rest].dtype)  # the model's dtype
            model_state = dict(ORIGINAL.model_state, **{rest: cast})
            assert_same_arrays(result.model_state, model_state, "model")
        else:
            assert_same_arrays(result.model_state, ORIGINAL.model_state, "model")


@SETTINGS
@given(
    st.sampled_from(
        ["model/0.weight.npy", "model/3.bias.npy", "optimizer/0.bias/v.npy", f"{META_KEY}.npy"]
    )
)
def test_member_removed(name):
    def mutate(members):
        members.pop(name, None)
        return members

    assert outcome(_rewrite(mutate)) == "error"
