"""Checkpoints: round trips, exact resume, and specific errors for broken or hostile files."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import cnnx
from cnnx import nn, optim
from cnnx.checkpoint import META_KEY, load_checkpoint, save_checkpoint
from cnnx.models import Model


def trained(seed=0, steps=3, device=None):
    model = cnnx.models.get("simple_cnn", seed=seed)
    opt = optim.Adam(model.named_parameters(), lr=0.01, beta1=0.7, beta2=0.99)
    rng = np.random.default_rng(seed)
    X = rng.random((10, 1, 6, 6), dtype=np.float32)
    y = rng.integers(0, 3, 10)
    cnnx.fit(model, opt, (X, y), epochs=steps, device=device)
    return model, opt


def test_round_trip_restores_weights_optimizer_and_position(tmp_path):
    model, opt = trained()
    rng = np.random.default_rng(42)
    rng.random(5)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt, rng=rng, epoch=3, step=3, dataset="digits6x6")
    ck = load_checkpoint(path)
    assert ck.model_name == "simple_cnn" and ck.model_config == {"seed": 0}
    assert (ck.epoch, ck.step) == (3, 3)
    assert ck.extra == {"dataset": "digits6x6"}
    assert ck.meta["cnnx_version"] == cnnx.__version__
    rebuilt = ck.build_model()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(rebuilt.state_dict()[key], value)
    new_opt = ck.build_optimizer(rebuilt)
    assert new_opt.step_count == opt.step_count
    assert new_opt.hyper == opt.hyper
    for name, state in opt.state.items():
        for key, value in state.items():
            np.testing.assert_array_equal(new_opt.state[name][key], value)
    assert ck.make_rng().random() == rng.random()


def test_model_save_and_load(tmp_path):
    model, _ = trained()
    model.save(tmp_path / "m.npz")
    loaded = Model.load(tmp_path / "m.npz")
    assert loaded.name == "simple_cnn"
    x = np.random.default_rng(0).random((4, 1, 6, 6), dtype=np.float32)
    np.testing.assert_array_equal(loaded.eval()(x), model.eval()(x))


def test_dropout_generator_state_is_saved(tmp_path):
    model = nn.Sequential(nn.Dropout(0.5, rng=3))
    model(np.ones((4, 4), dtype=np.float32))
    save_checkpoint(tmp_path / "d.npz", model)
    expected = model(np.ones((4, 4), dtype=np.float32))
    other = nn.Sequential(nn.Dropout(0.5, rng=99))
    load_checkpoint(tmp_path / "d.npz").restore_model(other)
    np.testing.assert_array_equal(other(np.ones((4, 4), dtype=np.float32)), expected)


def test_save_is_atomic_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model, opt = trained()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt, epoch=1)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", explode)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt, epoch=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]


# -- errors ---------------------------------------------------------------------------


def write_npz(path, **arrays):
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def meta(**overrides):
    document = {
        "format": "cnnx-checkpoint",
        "format_version": 1,
        "model": {"name": "simple_cnn", "config": {"seed": 0}},
        "training": {"epoch": None, "step": None},
    }
    document.update(overrides)
    return np.array(json.dumps(document))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such checkpoint file"),
        (lambda p: p.write_bytes(b"hello, not a zip"), "not a cnnx checkpoint"),
        (lambda p: write_npz(p, weights=np.zeros(3)), "without the __cnnx__ record"),
        (lambda p: write_npz(p, **{META_KEY: np.zeros(3)}), "malformed __cnnx__"),
        (lambda p: write_npz(p, **{META_KEY: np.array("{not json")}), "corrupted metadata"),
        (lambda p: write_npz(p, **{META_KEY: meta(format="other")}), "format is not"),
        (
            lambda p: write_npz(p, **{META_KEY: meta(format_version=7)}),
            "version 7 was written by a newer cnnx",
        ),
        (
            lambda p: write_npz(p, **{META_KEY: meta(format_version="x")}),
            "unknown checkpoint format version",
        ),
        (
            lambda p: write_npz(p, **{META_KEY: meta(), "stray": np.zeros(2)}),
            "unexpected array 'stray'",
        ),
        (
            lambda p: write_npz(p, **{META_KEY: meta(), "model/w": np.array(["a"])}),
            "expected numbers",
        ),
    ],
)
def test_load_errors_are_specific(tmp_path, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(cnnx.CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_truncated_file_is_a_checkpoint_error(tmp_path):
    model, opt = trained()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(cnnx.CheckpointError):
            load_checkpoint(path)


def test_corrupted_member_is_a_checkpoint_error(tmp_path):
    model, _ = trained()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model)
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buffer, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.startswith("model/"):
                data = data[:20]  # a header cut short
            dst.writestr(info, data)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(cnnx.CheckpointError, match=r"corrupted|truncated"):
        load_checkpoint(path)


def test_missing_extra_and_mismatched_arrays_are_named(tmp_path):
    model, _ = trained()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model)
    ck = load_checkpoint(path)
    del ck.model_state["0.bias"]
    ck.model_state["9.weight"] = np.zeros(2, dtype=np.float32)
    with pytest.raises(cnnx.CheckpointError, match=r"missing: 0\.bias; unexpected: 9\.weight"):
        ck.build_model()
    ck = load_checkpoint(path)
    ck.model_state["3.weight"] = np.zeros((3, 3, 3, 3), dtype=np.float32)
    with pytest.raises(
        cnnx.CheckpointError,
        match=r"'3\.weight' has shape \(3, 3, 3, 3\) in the state but \(3, 3, 2, 2\)",
    ):
        ck.build_model()


def test_optimizer_mismatch_is_named(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "ck.npz", model, opt)
    ck = load_checkpoint(tmp_path / "ck.npz")
    other = cnnx.models.get("enhanced_cnn")
    with pytest.raises(cnnx.CheckpointError, match="optimizer state does not match"):
        ck.restore_optimizer(optim.Adam(other.named_parameters()))
    with pytest.raises(cnnx.CheckpointError, match="state is for Adam, not SGD"):
        ck.restore_optimizer(optim.SGD(model.named_parameters(), lr=0.1))


class _Boom:
    """Unpickling this would run code; a safe loader must never do it."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickled_objects_are_refused_and_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.npz"
    hostile = np.empty(1, dtype=object)
    hostile[0] = _Boom()
    with open(path, "wb") as handle:
        np.savez(handle, **{META_KEY: meta(), "model/0.weight": hostile})
    with pytest.raises(cnnx.CheckpointError, match="pickled Python objects"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_a_raw_pickle_member_is_refused_and_never_executed(tmp_path, monkeypatch):
    import pickle

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{META_KEY}.npy", _npy_bytes(meta()))
        archive.writestr("model/0.weight.npy", pickle.dumps(_Boom()))
    with pytest.raises(cnnx.CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_same_state_same_bytes(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "a.npz", model, opt, epoch=3)
    save_checkpoint(tmp_path / "b.npz", model, opt, epoch=3)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_gpu_trained_weights_are_host_arrays(tmp_path, device, on_device):
    # Whatever device trained it, a checkpoint holds numpy arrays: loadable anywhere.
    model, opt = trained(device=device)
    on_device(*(p.data for p in model.parameters()), device)  # really trained there
    save_checkpoint(tmp_path / "ck.npz", model, opt)
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as archive:
        assert all(archive[key].dtype.kind in "fiuU" for key in archive.files)
    rebuilt = load_checkpoint(tmp_path / "ck.npz").build_model()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(rebuilt.state_dict()[key], value)
