"""Turning run results into tables and figures: runs.csv, curves.csv, summary.md, PNGs.

Statistics follow report 000: the mean and the population standard deviation
(``ddof=0``, NumPy's default, which is what the report's Table 5 used) of the
final accuracies, over the runs that finished. A diverged run is left out of the
mean and the standard deviation, counted in its own column, and shown as
``div@E`` (diverged in epoch E) in the per-seed tables.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnx.experiment.grid import Experiment, RunConfig
from cnnx.experiment.runner import CURVE_FIELDS, RunResult
from cnnx.experiment.store import CURVES_CSV, RUNS_CSV, SUMMARY_MD
from cnnx.utils.atomic import atomic_write_bytes, atomic_write_text

RUN_COLUMNS = (
    "config", "model", "optimizer", "dataset", "max_epochs", "batch_size", "seed", "status",
    "epochs", "diverged_epoch", "train_accuracy", "train_loss", "val_accuracy", "val_loss",
    "all_accuracy", "train_samples", "val_samples", "seconds", "device",
)  # fmt: skip
CURVE_COLUMNS = ("config", "seed", "epoch", *CURVE_FIELDS)


def ordered(experiment: Experiment, results: Sequence[RunResult]) -> list[RunResult]:
    """``results`` sorted by the experiment's configuration order, then by seed."""
    rank = {config.name: i for i, config in enumerate(experiment.configs)}
    return sorted(results, key=lambda r: (rank.get(r.config.name, len(rank)), r.seed))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def runs_csv(experiment: Experiment, results: Sequence[RunResult]) -> str:
    """One row per run (columns :data:`RUN_COLUMNS`), configuration-major, then by seed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RUN_COLUMNS)
    for r in ordered(experiment, results):
        c = r.config
        row = {
            "config": c.name, "model": c.describe_model(), "optimizer": c.describe_optimizer(),
            "dataset": c.dataset, "max_epochs": c.epochs,
            "batch_size": "full" if c.batch_size is None else c.batch_size,
            "seconds": round(r.seconds, 4),
        }  # fmt: skip
        writer.writerow([_cell(row[k]) if k in row else _cell(getattr(r, k)) for k in RUN_COLUMNS])
    return out.getvalue()


def curves_csv(experiment: Experiment, results: Sequence[RunResult]) -> str:
    """Per-epoch training and validation loss/accuracy of every run (long format)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    for r in ordered(experiment, results):
        columns = [r.curves.get(name, []) for name in ("epoch", *CURVE_FIELDS)]
        for values in zip(*columns, strict=True):
            writer.writerow([r.config.name, r.seed, *(_cell(v) for v in values)])
    return out.getvalue()


def mean_std(values: Sequence[float]) -> tuple[float, float] | None:
    """Mean and population standard deviation (ddof=0); None for no values."""
    if not values:
        return None
    mean = math.fsum(values) / len(values)
    var = math.fsum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(var)


def _fmt_mean_std(values: Sequence[float]) -> str:
    stats = mean_std(values)
    return "–" if stats is None else f"{stats[0]:.4f} ± {stats[1]:.4f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _data_text(config: RunConfig, sample: RunResult | None) -> str:
    if config.dataset == "digits6x6":
        path = config.dataset_options.get("path")
        text = f"6×6 digits ({path or 'bundled workbook'})"
    elif config.dataset == "patterns":
        options = ", ".join(f"{k}={v}" for k, v in config.dataset_options.items())
        text = f"11×11 patterns ({options or 'defaults'})"
    else:
        options = ", ".join(f"{k}={v}" for k, v in config.dataset_options.items())
        text = f"MNIST train ({options or 'all'})"
    if sample is not None:
        total = sample.train_samples + sample.val_samples
        text += f", {total} samples: {sample.train_samples} train / {sample.val_samples} val"
    return text


#: Presets whose tables are laid out like a published report's, and those tables, as
#: heading suffixes for (mean ± std, per-seed validation accuracy). Other experiments
#: (the toy presets: report 003 shows one run per setting; custom grids) get plain
#: headings.
_PUBLISHED_TABLES = {
    "report-table5": (" (like report 000's Table 5)", " (like report 000's Table 4)"),
}


def summary_markdown(
    experiment: Experiment,
    results: Sequence[RunResult],
    *,
    device: str = "cpu",
    elapsed: float | None = None,
    jobs: int | None = None,
) -> str:
    """summary.md: the Table 5-style means and the Table 4-style per-seed accuracies.

    Args:
        experiment: what was (or is being) run; its configuration and seed order
            orders the tables. Runs not finished yet show as ``…``.
        results: the finished runs.
        device: where they ran, for the header.
        elapsed: wall time of this invocation in seconds, if known.
        jobs: worker processes used, if known.
    """
    results = ordered(experiment, results)
    like = _PUBLISHED_TABLES.get(experiment.name, ("", ""))
    by_key = {(r.config.name, r.seed): r for r in results}
    total = len(experiment.configs) * len(experiment.seeds)
    n_div = sum(not r.ok for r in results)
    lines = [f"# Experiment `{experiment.name}`", ""]
    if experiment.description:
        lines += [experiment.description, ""]
    seeds = experiment.seeds
    seed_text = ", ".join(map(str, seeds))
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        seed_text = f"{seeds[0]}–{seeds[-1]}"
    status = f"{len(results)} of {total} runs finished" if len(results) < total else f"{total} runs"
    lines.append(f"- runs: {status} ({n_div} diverged); seeds {seed_text}")
    run_seconds = math.fsum(r.seconds for r in results)
    timing = f"- device: {device}; training time {run_seconds:.1f} s summed over runs"
    if elapsed is not None:
        timing += f"; wall time {elapsed:.1f} s"
        if jobs is not None:
            timing += f" with {jobs} worker{'s' if jobs > 1 else ''}"
    lines.append(timing)
    setups = []
    for config in experiment.configs:
        sample = next((r for r in results if r.config.name == config.name), None)
        batch = "full batch" if config.batch_size is None else f"batch {config.batch_size}"
        setups.append((config.name, _data_text(config, sample), f"{config.epochs} epochs, {batch}"))
    if len({s[1:] for s in setups}) == 1:
        lines.append(f"- data: {setups[0][1]} (a stratified split per seed); {setups[0][2]}")
    else:
        lines.append("- data and schedule per configuration:")
        lines += [f"  - {name}: {data}; {schedule}" for name, data, schedule in setups]
    lines += [
        "- accuracy: final accuracy of the trained weights; *val* on the run's held-out "
        "split, *train* on its training split, *all* on both together; *train loss* is the "
        "mean cross-entropy on the training split (ln 3 ≈ 1.0986 means it learned nothing). "
        "Mean ± population std (ddof 0) over the finished runs; diverged runs are counted, "
        "not averaged.",
        "",
        f"## Mean ± std of the final accuracy{like[0]}",
        "",
    ]
    rows = []
    for config in experiment.configs:
        mine = [by_key[(config.name, s)] for s in seeds if (config.name, s) in by_key]
        done = [r for r in mine if r.ok]
        times = [r.seconds for r in mine]

        def stat(name: str, done: list[RunResult] = done) -> str:
            values = [getattr(r, name) for r in done if getattr(r, name) is not None]
            return _fmt_mean_std(values)

        rows.append(
            [
                config.name, config.describe_model(), config.describe_optimizer(),
                stat("val_accuracy"), stat("train_accuracy"), stat("all_accuracy"),
                stat("train_loss"), str(len(done)), str(len(mine) - len(done)),
                f"{math.fsum(times) / len(times):.2f}" if times else "–",
            ]
        )  # fmt: skip
    lines += _table(
        ["configuration", "model", "optimizer", "val accuracy", "train accuracy",
         "all accuracy", "train loss", "runs", "diverged", "s/run"],
        rows,
    )  # fmt: skip
    for title, field in (
        (f"Final validation accuracy per seed{like[1]}", "val_accuracy"),
        ("Final accuracy on all samples (train + val) per seed", "all_accuracy"),
        ("Final training accuracy per seed", "train_accuracy"),
    ):
        lines += ["", f"## {title}", ""]
        rows = []
        for config in experiment.configs:
            row = [config.name]
            for seed in seeds:
                r = by_key.get((config.name, seed))
                if r is None:
                    row.append("…")
                elif not r.ok:
                    row.append(f"div@{r.diverged_epoch}")
                else:
                    value = getattr(r, field)
                    row.append("–" if value is None else f"{value:.3f}")
            rows.append(row)
        lines += _table(["configuration", *(f"seed {s}" for s in seeds)], rows)
    diverged = [r for r in results if not r.ok]
    if diverged:
        lines += ["", "## Diverged runs", ""]
        for r in diverged:
            last = "none" if r.last_finite_loss is None else f"{r.last_finite_loss:.6g}"
            lines.append(
                f"- {r.config.name}, seed {r.seed}: loss not finite in epoch "
                f"{r.diverged_epoch} (last finite loss {last})"
            )
    return "\n".join(lines) + "\n"


# --- figures ---------------------------------------------------------------------------


def _mean_band(series: list[list[float | None]]) -> tuple[list[int], list[float], list[float]]:
    """Epoch numbers, mean and std per epoch over runs (epochs all runs have)."""
    length = min(len(s) for s in series)
    epochs, means, stds = [], [], []
    for i in range(length):
        values = [s[i] for s in series if s[i] is not None]
        stats = mean_std(values)
        if stats is None:
            continue
        epochs.append(i + 1)
        means.append(stats[0])
        stds.append(stats[1])
    return epochs, means, stds


def _curve_groups(
    experiment: Experiment, results: Sequence[RunResult], field: str
) -> list[tuple[str, list[list[float | None]]]]:
    groups = []
    for config in experiment.configs:
        series = [r.curves.get(field, []) for r in results if r.config.name == config.name and r.ok]
        series = [s for s in series if s and any(v is not None for v in s)]
        if series:
            groups.append((f"{config.name} (n={len(series)})", series))
    return groups


def _draw(
    ax: Any,
    groups: list[tuple[str, list[list[float | None]]]],
    bounds: tuple[float, float],
) -> None:
    """Mean curve per group with a ±1 std band clipped to ``bounds``.

    A band is clipped to the values the quantity can take (a loss is never below 0,
    an accuracy never outside [0, 1]), so it never shows an impossible value.
    """
    low, high = bounds
    for label, series in groups:
        epochs, means, stds = _mean_band(series)
        (line,) = ax.plot(epochs, means, label=label, linewidth=1.4)
        lower = [max(m - s, low) for m, s in zip(means, stds, strict=True)]
        upper = [min(m + s, high) for m, s in zip(means, stds, strict=True)]
        ax.fill_between(epochs, lower, upper, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def _save(fig: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def write_plots(
    experiment: Experiment,
    results: Sequence[RunResult],
    loss_path: Path,
    accuracy_path: Path,
    note: Callable[[str], None],
) -> list[Path]:
    """Draw the loss and accuracy figures (mean per configuration, ±1 std band).

    matplotlib is imported here, not at module import, and used through its
    object-oriented API with the Agg canvas, so the caller's pyplot backend is
    untouched. Without matplotlib nothing is drawn and ``note`` gets one line.

    Returns:
        The paths written (empty without matplotlib or without finished runs).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        note(
            f"note: matplotlib is not installed, so {loss_path.name} and {accuracy_path.name} "
            'were skipped (pip install "cnnx[plot]")'
        )
        return []
    loss_groups = _curve_groups(experiment, results, "loss")
    if not loss_groups:
        return []
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    _draw(ax, loss_groups, (0.0, math.inf))
    ax.set_ylabel("training loss (mean ± 1 std over seeds, clipped at 0)")
    ax.set_title(f"{experiment.name}: training loss")
    ax.legend(fontsize=8)
    _save(fig, loss_path)

    fig = Figure(figsize=(11.0, 4.5))
    for position, (field, label) in enumerate(
        (("accuracy", "training accuracy"), ("val_accuracy", "validation accuracy")), start=1
    ):
        ax = fig.add_subplot(1, 2, position)
        groups = _curve_groups(experiment, results, field)
        _draw(ax, groups, (0.0, 1.0))
        ax.set_ylabel(f"{label} (mean ± 1 std)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{experiment.name}: {label}")
        if groups:
            ax.legend(fontsize=8, loc="lower right")
    _save(fig, accuracy_path)
    return [loss_path, accuracy_path]


def write_tables(
    directory: Path,
    experiment: Experiment,
    results: Sequence[RunResult],
    *,
    curves: bool = True,
    **summary: Any,
) -> str:
    """Write runs.csv, summary.md and (unless ``curves=False``) curves.csv; return the summary."""
    text = summary_markdown(experiment, results, **summary)
    atomic_write_text(directory / RUNS_CSV, runs_csv(experiment, results))
    atomic_write_text(directory / SUMMARY_MD, text)
    if curves:
        atomic_write_text(directory / CURVES_CSV, curves_csv(experiment, results))
    return text
