"""Property-based tests: the checkpoint loader on random and mutated files.

Every outcome must be a loaded checkpoint whose model can be rebuilt, or a
CheckpointError with a message; never another exception, never a hang.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
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


_TMP: list[Path] = []


def _tmp_dir() -> Path:
    if not _TMP:
        import tempfile

        _TMP.append(Path(tempfile.mkdtemp(prefix="cnnx-fuzz-")))
    return _TMP[0]


def _valid_bytes() -> bytes:
    """A real checkpoint: SimpleCNN, Adam after one step, a generator state."""
    model = cnnx.models.get("simple_cnn", seed=0)
    opt = cnnx.optim.Adam(model.named_parameters(), lr=0.01)
    opt.step()
    path = _tmp_dir() / "valid.npz"
    save_checkpoint(path, model, opt, rng=np.random.default_rng(0), epoch=1, step=1)
    return path.read_bytes()


VALID = _valid_bytes()


def outcome(data: bytes) -> str:
    path = _tmp_dir() / "case.npz"
    path.write_bytes(data)
    try:
        checkpoint = load_checkpoint(path)
        model = checkpoint.build_model()
        if checkpoint.meta.get("optimizer"):
            checkpoint.build_optimizer(model)
    except cnnx.CheckpointError as exc:
        assert str(exc), "a CheckpointError without a message"
        return "error"
    return "loaded"


@SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    assert outcome(data) == "error" or data == VALID


@SETTINGS
@given(st.integers(0, len(VALID) - 1), st.integers(0, 255))
def test_one_byte_changed(position, value):
    data = bytearray(VALID)
    data[position] = value
    outcome(bytes(data))


@SETTINGS
@given(st.integers(0, len(VALID)))
def test_truncated(length):
    result = outcome(VALID[:length])
    assert result == "error" or length == len(VALID)


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

    outcome(_rewrite(mutate))


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

    outcome(_rewrite(mutate))


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
