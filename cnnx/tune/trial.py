"""One trial of a search: a run definition trained once per seed, measured on validation.

This is the part that runs where the trial runs (this process, a worker process
or a Dask worker): it gets plain data in (the run definition's fields, the seeds)
and gives a plain dict back, so it crosses process and machine boundaries as is.
Optuna is touched here only to report per-epoch figures for pruning, through the
study's shared storage.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

COMPLETE = "COMPLETE"
PRUNED = "PRUNED"
FAIL = "FAIL"


class _Pruned(Exception):
    """Raised from the per-epoch hook to stop a run the pruner gave up on."""

    def __init__(self, step: int):
        super().__init__(f"pruned at step {step}")
        self.step = step


def pruning_step(seed_index: int, epochs: int, epoch: int) -> int:
    """The step a per-epoch figure is reported at: seeds run one after another.

    Step ``k·epochs + e`` is epoch ``e`` of the ``k``-th seed, so the median pruner
    compares every trial's same seed at the same epoch.
    """
    return seed_index * epochs + epoch


def open_trial(pruning: Mapping[str, Any]) -> Any:
    """The running Optuna trial named by ``pruning`` (storage URL, study, trial id, pruner)."""
    import optuna

    from cnnx.tune.study import make_pruner

    study = optuna.load_study(
        study_name=pruning["study_name"],
        storage=pruning["storage"],
        pruner=make_pruner(pruning["pruner"]),
    )
    return optuna.trial.Trial(study, pruning["trial_id"])


def run_trial(
    spec_fields: Mapping[str, Any],
    seeds: Sequence[int],
    *,
    trial: Any = None,
    pruning: Mapping[str, Any] | None = None,
    data: Mapping[int, Any] | None = None,
) -> dict[str, Any]:
    """Train the run definition once per seed and measure it on its validation split.

    Args:
        spec_fields: ``RunSpec.to_dict()`` of the trial's run (its seed is replaced).
        seeds: the seeds, in order.
        trial: an Optuna trial to report per-epoch validation accuracy to (pruning in
            this process); or
        pruning: where to open that trial (pruning in another process).
        data: already loaded ``RunData`` per seed (a worker without the data files).

    Returns:
        ``{"state", "value", "val_loss", "accuracies", "losses", "epochs", "seconds",
        "note"}``: ``value`` is the mean final validation accuracy over the seeds,
        ``val_loss`` the mean final validation loss; ``state`` is ``COMPLETE``,
        ``PRUNED`` (stopped by the pruner) or ``FAIL`` (a run diverged, or has no
        validation split).
    """
    from cnnx import runs

    start = time.perf_counter()
    if trial is None and pruning is not None:
        trial = open_trial(pruning)
    spec = runs.RunSpec.from_dict(dict(spec_fields), source="the search")
    accuracies: list[float] = []
    losses: list[float] = []
    epochs_run = 0

    def result(state: str, note: str = "") -> dict[str, Any]:
        done = len(accuracies) == len(seeds) and state == COMPLETE
        return {
            "state": state,
            "value": sum(accuracies) / len(accuracies) if done else None,
            "val_loss": sum(losses) / len(losses) if done else None,
            "accuracies": accuracies,
            "losses": losses,
            "epochs": epochs_run,
            "seconds": time.perf_counter() - start,
            "note": note,
        }

    for index, seed in enumerate(seeds):
        run_spec = spec.replace(seed=int(seed))

        def on_epoch(record: Any, index: int = index) -> None:
            nonlocal epochs_run
            epochs_run += 1
            if trial is None or record.val_accuracy is None:
                return
            step = pruning_step(index, spec.epochs, record.epoch)
            trial.report(float(record.val_accuracy), step)
            if trial.should_prune():
                raise _Pruned(step)

        try:
            outcome = runs.execute(
                run_spec, data=None if data is None else data[int(seed)], on_epoch=on_epoch
            )
        except _Pruned as stop:
            return result(PRUNED, f"pruned at seed {seed}, epoch {stop.step - index * spec.epochs}")
        if outcome.status != "ok":
            epoch = len(outcome.history) + 1
            return result(FAIL, f"seed {seed} diverged in epoch {epoch}")
        final = outcome.history.final
        if final.val_accuracy is None:
            return result(FAIL, "the run has no validation split to measure (val_fraction 0)")
        accuracies.append(float(final.val_accuracy))
        losses.append(float(final.val_loss))
    return result(COMPLETE)
