"""``cnnx explain``: the slides' worked example replayed exactly, and any checkpoint's sample."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

from cnnx.cli import main
from cnnx.inspect.explain import WORKED_FILTER, WORKED_INPUT, num, worked_example

P1 = 1.0 / (1.0 + math.exp(10.9))  # softmax([5.6, -5.3])[1], written in closed form


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_worked_example_forward_numbers_exactly():
    trace = worked_example().trace
    np.testing.assert_array_equal(trace.outputs["0"][0, 0], [[5, 7], [11, 10]])
    np.testing.assert_array_equal(trace.outputs["1"][0, 0], [[5, 7], [11, 10]])
    assert trace.outputs["2"].item() == 11
    np.testing.assert_array_equal(trace.outputs["4"][0], [5.6, -5.3])
    assert trace.loss == pytest.approx(math.log1p(math.exp(-10.9)), rel=1e-12)


def test_worked_example_backward_and_update_numbers():
    e = worked_example()
    t = e.trace
    np.testing.assert_allclose(t.grads["4"][0], [-P1, P1], rtol=1e-9)
    np.testing.assert_allclose(t.param_grads["4.weight"], [[-11 * P1], [11 * P1]], rtol=1e-9)
    np.testing.assert_allclose(t.grads["1"][0, 0], [[0, 0], [-P1, 0]], rtol=1e-9, atol=0)
    window = WORKED_INPUT[1:4, 0:3]
    np.testing.assert_allclose(t.param_grads["0.weight"][0, 0], -P1 * window, rtol=1e-9, atol=0)
    np.testing.assert_allclose(t.param_grads["0.bias"], [-P1], rtol=1e-9)
    np.testing.assert_allclose(
        e.updated["0.weight"][0, 0], WORKED_FILTER + 0.1 * P1 * window, rtol=1e-9, atol=1e-20
    )
    np.testing.assert_allclose(e.updated["4.bias"], [0.1 + 0.1 * P1, 0.2 - 0.1 * P1], rtol=1e-12)


def test_worked_example_text_in_the_slides_notation():
    result = run("explain", "--worked-example")
    assert result.exit_code == 0, result.output
    text = result.output
    for line in [
        "Z[0, 0] = (1·1 + 2·0 + 0·1) + (3·0 + 1·1 + 1·0) + (0·1 + 2·0 + 2·1) + 1 = 5",
        "Z[0, 1] = (2·1 + 0·0 + 1·1) + (1·0 + 1·1 + 5·0) + (2·1 + 2·0 + 0·1) + 1 = 7",
        "Z[1, 0] = (3·1 + 1·0 + 1·1) + (0·0 + 2·1 + 2·0) + (1·1 + 0·0 + 3·1) + 1 = 11",
        "Z[1, 1] = (1·1 + 1·0 + 5·1) + (2·0 + 2·1 + 0·0) + (0·1 + 3·0 + 1·1) + 1 = 10",
        "Z_conv = [[5, 7], [11, 10]]",
        "A_pool[0, 0] = max([[5, 7], [11, 10]]) = 11",
        "[11] @ [[0.5, -0.5]] + [0.1, 0.2]",
        "= [11·0.5 + 0.1, 11·(-0.5) + 0.2]",
        "Z_dense = [5.6, -5.3]",
        "e^5.6 ≈ 270.43",
        f"ŷ = [{num(1 - P1)}, {num(P1)}]",
        f"L = −log({num(1 - P1)}) = {num(math.log1p(math.exp(-10.9)))}",
        f"= [{num(-P1)}, {num(P1)}]",
        f"∂L/∂W_dense = δᵀ · A_flat = [[{num(-11 * P1)}], [{num(11 * P1)}]]",
        f"∂L/∂A_relu = [[0, 0], [{num(-P1)}, 0]]",
        f"{num(-P1)} × [[3, 1, 1], [0, 2, 2], [1, 0, 3]]",
        f"∂L/∂b_conv = Σ ∂L/∂Z = [{num(-P1)}]",
        "= [[1.0000055, 1.8457893e-06, 1.0000018], [0, 1.0000037, 3.6915787e-06], "
        "[1.0000018, 0, 1.0000055]]",
        "= [1.0000018]",
    ]:
        assert line in text, line
    assert num(P1) == "1.8458e-05"


def test_explain_a_checkpoint_sample(tmp_path):
    assert run("train", "--epochs", "30", "--output-dir", tmp_path / "r", "-q").exit_code == 0
    result = run("explain", tmp_path / "r" / "last.npz", "--sample", "2", "--lr", "0.5")
    assert result.exit_code == 0, result.output
    assert "Convolution, layer 0 Conv2D(1, 3, kernel_size=3)" in result.output
    assert "(the largest of this channel)" in result.output  # 48 outputs: summarised
    assert "Backward, convolution layer 0" in result.output
    assert "SGD update" in result.output
    bad = run("explain", tmp_path / "r" / "last.npz", "--sample", "500")
    assert bad.exit_code == 2 and "out of range" in bad.output
    assert run("explain").exit_code == 2
