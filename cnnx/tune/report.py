"""A search's files: trials.csv, best.json, summary.md and, with matplotlib, two figures.

Every file is written atomically. The tables are made from the study itself, so
a study shared by several processes shows every process's trials.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnx.tune.space import SearchSpace, apply
from cnnx.tune.trial import COMPLETE, PRUNED
from cnnx.utils.atomic import atomic_write_bytes, atomic_write_text
from cnnx.utils.output_dir import claim_output_dir

TRIALS_CSV = "trials.csv"
BEST_JSON = "best.json"
SUMMARY_MD = "summary.md"
# The y axis (history) and x axis (importances) of the figures: what a trial value is.
OBJECTIVE_NAME = "mean validation accuracy"
HISTORY_PNG = "optimization_history.png"
IMPORTANCE_PNG = "param_importances.png"
STUDY_DB = "study.db"
FILES = (TRIALS_CSV, BEST_JSON, SUMMARY_MD, HISTORY_PNG, IMPORTANCE_PNG)


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(path: str | Path, *, overwrite: bool) -> Path:
    """Claim ``path`` as the output directory (the rule of every cnnx command)."""
    path = claim_output_dir(
        path, reuse=overwrite, how_to_reuse="pass --overwrite to replace its results"
    )
    path.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in FILES:
            (path / name).unlink(missing_ok=True)
    return path


def spec_of(trial: Any, base: Any, space: SearchSpace, seeds: Sequence[int]) -> Any:
    """The run definition of ``trial``, with the first seed: what best.json holds."""
    from cnnx import runs

    fields = apply(base.to_dict(), trial.params)
    fields["seed"] = int(seeds[0])
    return runs.RunSpec.from_dict(fields, source=f"trial {trial.number}")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def describe_trial(number: int, result: dict[str, Any]) -> str:
    """One progress line: ``trial 3: 0.9125 (val loss 0.2710)  (4.1 s)``."""
    state = result["state"]
    if state == COMPLETE:
        text = f"val acc {result['value']:.4f}  val loss {result['val_loss']:.4f}"
    else:
        text = state.lower() + (f": {result['note']}" if result.get("note") else "")
    return f"trial {number}: {text}  ({result.get('seconds', 0.0):.1f} s)"


def _param_names(trials: Sequence[Any], space: SearchSpace) -> list[str]:
    seen = [name for name in space.names if any(name in t.params for t in trials)]
    return seen or space.names


def trials_csv(trials: Sequence[Any], space: SearchSpace, seeds: Sequence[int]) -> str:
    """One row per trial: number, state, value, val_loss, the parameters, per-seed figures."""
    names = _param_names(trials, space)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    seed_cols = [f"val_accuracy_seed{s}" for s in seeds]
    writer.writerow(
        ["number", "state", "value", "val_loss", *names, *seed_cols, "epochs", "seconds",
         "host", "note"]
    )  # fmt: skip
    for t in sorted(trials, key=lambda t: t.number):
        attrs = t.user_attrs
        accuracies = list(attrs.get("accuracies") or [])
        accuracies += [None] * (len(seeds) - len(accuracies))
        writer.writerow(
            [t.number, t.state.name, _fmt(t.value), _fmt(attrs.get("val_loss"))]
            + [_fmt(t.params.get(n)) for n in names]
            + [_fmt(a) for a in accuracies]
            + [_fmt(attrs.get("epochs")), _fmt(attrs.get("seconds")), attrs.get("host", ""),
               attrs.get("note", "")]
        )  # fmt: skip
    return buffer.getvalue()


def summary_markdown(
    study: Any,
    seeds: Sequence[int],
    base: Any,
    space: SearchSpace,
    *,
    elapsed: float | None = None,
    storage: str | None = None,
    sampler: str = "random",
    sampler_seed: int = 0,
    prune: bool = False,
    top: int = 10,
    best_json: str = BEST_JSON,
) -> str:
    """The search in words and tables: what was searched, the best trials, how to retrain.

    ``best_json`` is the retraining command's path: the output directory as the user
    typed it, so the command printed on the console runs from where the search ran.
    """
    from cnnx.tune.study import best_trial

    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    lines = [f"# Search: {study.study_name}", ""]
    fixed = {k: v for k, v in base.to_dict().items() if k not in ("seed",)}
    lines.append(f"- base run: `{json.dumps(fixed, sort_keys=True)}`")
    lines.append(f"- searched: {'; '.join(space.describe())}")
    lines.append(
        f"- sampler: {sampler} (seed {sampler_seed}); pruning: "
        + ("median pruner on per-epoch validation accuracy" if prune else "none")
    )
    lines.append(f"- storage: {storage or 'in memory'}")
    lines.append(
        f"- objective: mean final validation accuracy over seeds {list(seeds)} (maximised); "
        "ties broken on the lower mean validation loss"
    )
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
    lines.append(f"- trials: {len(trials)} ({counts or 'none'})")
    if elapsed is not None:
        lines.append(f"- wall time of this process: {elapsed:.1f} s")
    lines.append("")
    best = best_trial(trials)
    finished = [t for t in trials if t.state.name == COMPLETE and t.value is not None]
    if best is None:
        lines += ["No trial finished.", ""]
        return "\n".join(lines)
    names = _param_names(trials, space)
    ranked = sorted(
        finished,
        key=lambda t: (-t.value, t.user_attrs.get("val_loss", float("inf")), t.number),
    )
    lines.append(f"## Best {min(top, len(ranked))} of {len(finished)} finished trials")
    lines.append("")
    header = ["trial", "val accuracy", "val loss", *names]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for t in ranked[:top]:
        loss = t.user_attrs.get("val_loss", float("nan"))
        cells = [str(t.number), f"{t.value:.4f}", f"{loss:.4f}"]
        cells += [_fmt(t.params.get(n)) for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    accuracies = best.user_attrs.get("accuracies", [])
    per_seed = ", ".join(f"seed {s}: {a:.4f}" for s, a in zip(seeds, accuracies, strict=False))
    lines.append(f"## Best trial: {best.number}")
    lines.append("")
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
    lines.append(f"- parameters: {params}")
    lines.append(
        f"- mean validation accuracy {best.value:.4f}, mean validation loss "
        f"{best.user_attrs.get('val_loss', float('nan')):.4f} ({per_seed})"
    )
    lines.append(
        f"- retrain it: `cnnx train --config {best_json}` (the run definition with seed "
        f"{seeds[0]}; its validation accuracy is the seed-{seeds[0]} figure above)"
    )
    if any(t.state.name == PRUNED for t in trials):
        lines.append(f"- pruned trials: {states.get(PRUNED, 0)} (stopped by the median pruner)")
    lines.append("")
    return "\n".join(lines)


def write(
    directory: Path,
    study: Any,
    seeds: Sequence[int],
    base: Any,
    space: SearchSpace,
    *,
    plots: bool,
    log: Callable[[str], None],
    summary: str | None = None,
) -> list[Path]:
    """Write trials.csv, best.json (if a trial finished), summary.md and the figures."""
    from cnnx.tune.study import best_trial

    trials = study.get_trials(deepcopy=False)
    files = [directory / TRIALS_CSV]
    atomic_write_text(directory / TRIALS_CSV, trials_csv(trials, space, seeds))
    best = best_trial(trials)
    if best is not None:
        spec = spec_of(best, base, space, seeds)
        atomic_write_text(directory / BEST_JSON, json.dumps(spec.to_dict(), indent=2) + "\n")
        files.append(directory / BEST_JSON)
    text = summary if summary is not None else summary_markdown(study, seeds, base, space)
    atomic_write_text(directory / SUMMARY_MD, text)
    files.append(directory / SUMMARY_MD)
    if plots:
        files += write_plots(directory, study, log)
    return files


def write_plots(directory: Path, study: Any, log: Callable[[str], None]) -> list[Path]:
    """Optuna's optimisation-history and parameter-importance figures, as PNGs.

    Needs matplotlib (the ``plot`` extra); without it, or with too few finished
    trials for importances, the figure is skipped with a note.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        log(
            f"note: matplotlib is not installed, so {HISTORY_PNG} and {IMPORTANCE_PNG} were "
            'skipped (pip install "cnnx[plot]")'
        )
        return []
    import optuna
    from optuna.visualization import matplotlib as ovm

    written = []
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.name == COMPLETE]
    for name, draw, needed in (
        (HISTORY_PNG, ovm.plot_optimization_history, 1),
        (IMPORTANCE_PNG, ovm.plot_param_importances, 2),
    ):
        if len(finished) < needed:
            log(f"note: {name} needs {needed} finished trials; skipped")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                ax = draw(study, target_name=OBJECTIVE_NAME)
            except (ValueError, RuntimeError) as exc:
                log(f"note: {name} skipped: {exc}")
                continue
        fig = ax.figure
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        atomic_write_bytes(directory / name, buffer.getvalue())
        written.append(directory / name)
    return written
