"""Bad INPUT files of `cnnx inspect/show/explain`: one line naming the file (found in QA)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from cnnx import models
from cnnx.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("qa") / "simple.npz"
    models.get("simple_cnn", seed=0).save(path, dataset="digits6x6")
    return path


def _write(path, kind):
    X = np.zeros((3, 1, 6, 6), np.float32)
    if kind == "garbage":
        path.write_bytes(b"garbage, not a zip archive\n")
    elif kind == "object":
        np.savez(path, X=np.array([{"a": 1}], dtype=object))
    elif kind == "y-length":
        np.savez(path, X=X, y=np.array([0, 1]))
    elif kind == "y-range":
        np.savez(path, X=X, y=np.array([0, 1, 7]))
    elif kind == "y-float":
        np.savez(path, X=X, y=np.array([0.5, 1.0, 2.0]))
    elif kind == "X-text":
        np.savez(path, X=np.array(["a", "b"]))


@pytest.mark.parametrize("kind", ["garbage", "object", "y-length", "y-range", "y-float", "X-text"])
@pytest.mark.parametrize("command", ["inspect", "show confusion"])
def test_bad_npz_input_is_one_line_naming_the_file(checkpoint, tmp_path, kind, command):
    # Before: 'This file contains pickled (object) data ... allow_pickle=', 'Object arrays
    # cannot be loaded', 'label 7 is out of range for 3 classes', 'confusion_matrix:
    # y_true (2,) and y_pred (3,) ...': none named the file, two blamed pickling.
    data = tmp_path / f"{kind}.npz"
    _write(data, kind)
    if command == "inspect":
        args = ["inspect", str(checkpoint), str(data)]
    else:
        args = ["show", "confusion", str(checkpoint), str(data), "-o", str(tmp_path / "c.png")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"error: {data}")
    assert result.output.strip().count("\n") == 0
    assert "pickle" not in result.output and "confusion_matrix" not in result.output


def test_a_run_directory_given_as_checkpoint_names_the_file_inside(tmp_path):
    # QA: `cnnx evaluate runs/a` said "runs/a: no such checkpoint file", untrue for a
    # directory that exists; it should point at the checkpoint files a run holds.
    run_dir = tmp_path / "a"
    result = CliRunner().invoke(main, ["train", "--epochs", "2", "--output-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    for command in (["evaluate"], ["inspect"], ["summary"]):
        result = CliRunner().invoke(main, [*command, str(run_dir)])
        assert result.exit_code == 1, result.output
        assert result.output.strip() == (
            f"error: {run_dir} is a directory; give a checkpoint file in it, "
            f"e.g. {run_dir / 'last.npz'} or {run_dir / 'best.npz'}"
        )


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_sixteen_bit_and_float_grey_images_are_read_like_8_bit_ones(tmp_path, mode):
    # QA: a 16-bit greyscale PNG (scanners, lab cameras) became a white square after
    # Pillow's convert("L") clipped every value above 255, and was silently classified.
    from PIL import Image

    from cnnx.inspect.images import read_grey

    rng = np.random.default_rng(0)
    grey8 = rng.integers(0, 256, size=(20, 24)).astype(np.uint8)
    Image.fromarray(grey8).save(tmp_path / "eight.png")
    scale = {"I;16": 257, "I": 257, "F": 1}[mode]
    wide = grey8.astype(np.float32 if mode == "F" else np.int32) * scale
    image = Image.fromarray(wide.astype(np.uint16) if mode == "I;16" else wide)
    if mode == "I":
        image = image.convert("I")
    path = tmp_path / ("wide.png" if mode == "I;16" else "wide.tif")
    image.save(path)
    expected = read_grey(tmp_path / "eight.png")
    np.testing.assert_allclose(read_grey(path), expected, atol=1 / 255)


def test_json_error_position_reads_once(tmp_path):
    # QA: a config.json cut inside a string said "Invalid control character at at line 1".
    (tmp_path / "c.json").write_text('{"broken\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["train", "--config", str(tmp_path / "c.json")])
    assert result.exit_code == 1
    assert "at at" not in result.output
    assert "not valid JSON (Invalid control character at line 1, column" in result.output


def test_a_preset_with_changed_epochs_says_so_in_its_summary(tmp_path):
    # QA: `cnnx experiment toy-lr --epochs 5` wrote summary.md whose paragraph said
    # "plain SGD, minibatch 8, 500 epochs" above a table of 5-epoch runs.
    out = tmp_path / "out"
    args = ["experiment", "toy-lr", "--seeds", "0", "--epochs", "2", "--output-dir", str(out)]
    result = CliRunner().invoke(main, [*args, "-q"])
    assert result.exit_code == 0, result.output
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "Changed on the command line: epochs 2." in summary


def test_explain_names_the_pooled_input_after_a_sigmoid_a_not_a_relu(checkpoint):
    # QA: SimpleCNN (Conv, Sigmoid, MaxPool, ...) explained its pooling backward as
    # "∂L/∂A_relu = ...", though there is no ReLU in the network.
    from pathlib import Path

    import cnnx

    book = Path(cnnx.__file__).parent / "datasets" / "digits6x6.xlsx"
    result = CliRunner().invoke(main, ["explain", str(checkpoint), str(book), "--sample", "0"])
    assert result.exit_code == 0, result.output
    assert "A_relu" not in result.output
    assert "Backward, pooling layer 2" in result.output
    assert "\n     ∂L/∂A = [[[" in result.output.split("Backward, pooling layer 2")[1]


def test_output_piped_into_head_ends_quietly():
    # QA: `cnnx summary --list | head -1` (or predict ... | head) printed
    # "error: [Errno 32] Broken pipe" once head had what it wanted.
    import subprocess
    import sys

    code = "from cnnx.cli import main; main()"
    child = subprocess.Popen(
        [sys.executable, "-c", code, "summary", "--list"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    child.stdout.close()  # the reader went away before the first line
    stderr = child.stderr.read().decode()
    child.wait(timeout=60)
    assert "Broken pipe" not in stderr and "Traceback" not in stderr, stderr


def _config_with(tmp_path, **changes):
    import json

    from cnnx import runs

    data = {**runs.defaults("digits6x6").replace(epochs=2).to_dict(), **changes}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_config_files_bad_model_options_name_the_file(tmp_path):
    # QA: said "model simple_cnn: simple_cnn() got an unexpected keyword argument 'foo'",
    # naming neither the file nor the field.
    path = _config_with(tmp_path, model_options={"foo": 1})
    result = CliRunner().invoke(main, ["train", "--config", str(path), "-q"])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {path}: model_options of simple_cnn: ")
    assert "'foo'" in result.output


def test_a_config_files_unusable_device_names_the_file_and_the_way_out(tmp_path):
    # QA: a config.json written on a GPU machine, run on a laptop, said only "device
    # 'cuda:0' is not usable: ...", though the user never typed a device.
    path = _config_with(tmp_path, device="cuda:0")
    result = CliRunner().invoke(main, ["train", "--config", str(path), "-q"])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {path}: device 'cuda:0' ")
    assert "--device cpu" in result.output
    assert result.output.strip().count("\n") == 0
    again = CliRunner().invoke(main, ["train", "--config", str(path), "--device", "cpu", "-q"])
    assert again.exit_code == 0, again.output


def test_predict_reads_the_npz_that_inspect_and_show_read(checkpoint, tmp_path):
    # QA: docs/inspect.md keeps held-out data as an .npz with X and y, which inspect,
    # explain and show read; `cnnx predict CKPT held-out.npz` said "not an IDX file:
    # starts with bytes 50 4b 03 04".
    data = tmp_path / "held-out.npz"
    X = np.random.default_rng(0).random((4, 1, 6, 6)).astype(np.float32)
    np.savez(data, X=X, y=np.array([0, 1, 2, 0]))
    result = CliRunner().invoke(main, ["predict", str(checkpoint), str(data), "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("sample,predicted,label,")
    assert [line.split(",")[2] for line in lines[1:]] == ["0", "1", "2", "0"]
