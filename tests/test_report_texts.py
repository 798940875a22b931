"""summary.md headings and seed texts, and the loss figure's ±1 std band (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnx.experiment import report
from cnnx.experiment.grid import preset
from cnnx.experiment.runner import RunResult


def result(config, seed, losses, accuracies=None):
    """A finished run with the given per-epoch training losses (no training needed)."""
    n = len(losses)
    accuracies = accuracies or [0.5] * n
    return RunResult(
        config=config, seed=seed, status="ok", epochs=n, train_accuracy=accuracies[-1],
        train_loss=losses[-1], val_accuracy=0.5, val_loss=1.0, all_accuracy=0.5,
        train_samples=10, val_samples=5, seconds=0.1, device="cpu",
        curves={
            "epoch": list(range(1, n + 1)), "loss": list(losses), "accuracy": accuracies,
            "val_loss": [1.0] * n, "val_accuracy": [0.5] * n,
        },
    )  # fmt: skip


@pytest.mark.parametrize("name", ["toy-lr", "toy-kernel"])
def test_toy_summaries_do_not_claim_report_000s_tables(name):
    text = report.summary_markdown(preset(name), [])
    assert "report 000" not in text
    assert "Table 5" not in text and "Table 4" not in text


def test_report_table5_summary_still_points_at_report_000s_tables():
    text = report.summary_markdown(preset("report-table5"), [])
    assert "## Mean ± std of the final accuracy (like report 000's Table 5)" in text
    assert "(like report 000's Table 4)" in text


@pytest.mark.parametrize(("name", "seeds", "shown"), [
    ("toy-lr", (0,), "seeds 0"),
    ("toy-kernel", (2, 5), "seeds 2, 5"),
    ("report-table5", (0, 1, 2), "seeds 0–2"),
])  # fmt: skip
def test_summary_names_only_the_seeds_that_run(name, seeds, shown):
    experiment = preset(name).replace(seeds=seeds)
    text = report.summary_markdown(experiment, [])
    assert f"; {shown}\n" in text
    for stale in ("seeds 0-4", "seeds 0-9", "seeds 0–4", "seeds 0–9"):
        assert stale not in text, f"{stale!r} in a summary of seeds {seeds}"


def _loss_band_vertices(tmp_path, monkeypatch, experiment, results):
    pytest.importorskip("matplotlib")
    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig))
    report.write_plots(experiment, results, tmp_path / "l.png", tmp_path / "a.png", print)
    loss_axes = figures[0].axes[0]
    (band,) = loss_axes.collections
    return np.concatenate([p.vertices for p in band.get_paths()])


def test_loss_band_is_clipped_at_zero(tmp_path, monkeypatch):
    # Per epoch the losses are 0, 0 and 3 over three seeds: mean 1, std √2, so an
    # unclipped band would reach 1 − √2 < 0, a loss no run can have.
    experiment = preset("toy-lr").replace(seeds=(0, 1, 2))
    config = experiment.configs[0]
    runs = [result(config, s, [loss] * 4) for s, loss in enumerate((0.0, 0.0, 3.0))]
    vertices = _loss_band_vertices(tmp_path, monkeypatch, experiment, runs)
    assert vertices[:, 1].min() == 0.0
    assert vertices[:, 1].max() == pytest.approx(1 + np.sqrt(2))


def test_loss_band_above_zero_is_unchanged(tmp_path, monkeypatch):
    experiment = preset("toy-lr").replace(seeds=(0, 1))
    config = experiment.configs[0]
    runs = [result(config, 0, [2.0, 1.0]), result(config, 1, [4.0, 3.0])]
    vertices = _loss_band_vertices(tmp_path, monkeypatch, experiment, runs)
    assert sorted(set(vertices[:, 1].round(12))) == [1.0, 2.0, 3.0, 4.0]
