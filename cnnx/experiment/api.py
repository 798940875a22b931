"""``run_experiment``: run a grid of configurations × seeds and write its tables and figures."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnx.backends import device as resolve_device
from cnnx.errors import ConfigError
from cnnx.experiment import report
from cnnx.experiment.grid import Experiment, RunConfig, preset
from cnnx.experiment.runner import RunResult, run_many
from cnnx.experiment.store import (
    ACCURACY_PNG,
    CURVES_CSV,
    LOSS_PNG,
    RUNS_CSV,
    SUMMARY_MD,
    ExperimentDirectory,
)
from cnnx.runs import build, check_fits, load_data, size_model_to_data


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` returns.

    Attributes:
        experiment: the experiment that ran.
        runs: one :class:`RunResult` per (configuration, seed), in table order
            (configuration, then seed); resumed runs included.
        summary: the text of summary.md.
        output_dir: where the files are, or None.
        files: the report files written (runs.csv, summary.md, curves.csv, PNGs).
        elapsed: wall time of this call in seconds.
    """

    experiment: Experiment
    runs: list[RunResult]
    summary: str
    output_dir: Path | None
    files: list[Path]
    elapsed: float

    def accuracies(self, config: str, field: str = "val_accuracy") -> list[float]:
        """Final ``field`` of every finished run of configuration ``config``, by seed."""
        return [getattr(r, field) for r in self.runs if r.config.name == config and r.ok]

    def mean_std(self, config: str, field: str = "val_accuracy") -> tuple[float, float] | None:
        """Mean and population std (ddof 0) of :meth:`accuracies`; None if none finished."""
        return report.mean_std(self.accuracies(config, field))


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def as_experiment(
    spec: Experiment | str | Sequence[RunConfig | Mapping[str, Any]],
    seeds: Iterable[int] | None = None,
    name: str = "custom",
) -> Experiment:
    """Turn a preset name, a list of configurations (or dicts) or an Experiment into one.

    Args:
        spec: the experiment, a name in :data:`cnnx.experiment.PRESETS`, or configurations.
        seeds: replaces the experiment's seeds when given (default for a list: 0-9).
        name: the name of an experiment made from a list.
    """
    if isinstance(spec, Experiment):
        experiment = spec
    elif isinstance(spec, str):
        experiment = preset(spec)
    elif isinstance(spec, RunConfig | Mapping):
        experiment = Experiment(name, (spec,))
    else:
        experiment = Experiment(name, tuple(spec))
    if seeds is not None:
        experiment = experiment.replace(seeds=tuple(seeds))
    return experiment


def check_config(config: RunConfig) -> None:
    """Fail early, naming the configuration, if its model cannot take its data.

    Loads the data, builds the model and optimizer and runs one sample through
    the model, so a wrong combination (a 28×28 model on 6×6 digits, a kernel
    larger than the image, an unknown model argument) is reported before any run.

    Raises:
        ValueError: the combination cannot train.
    """
    where = f"configuration {config.name!r}"
    try:
        spec = config.spec(0)
        data = load_data(spec)
        spec = size_model_to_data(spec, data)  # as runs.execute does (convnet)
        model, _ = build(spec)
        check_fits(spec, model, data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.detail}", field=exc.field, detail=exc.detail) from None


def run_experiment(
    spec: Experiment | str | Sequence[RunConfig | Mapping[str, Any]],
    output_dir: str | Path | None = None,
    *,
    seeds: Iterable[int] | None = None,
    jobs: int = 1,
    device: str = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    plots: bool = True,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
    in_process: bool = False,
    executor: Executor | None = None,
) -> ExperimentResult:
    """Train every configuration once per seed and write the tables and figures.

    Each run draws its split, initial weights and minibatch order from its seed
    only, so results do not depend on ``jobs`` or on the order runs finish in.
    Each finished run is saved at once as ``runs/<config>__seed<k>.json`` and
    runs.csv and summary.md are rewritten; curves.csv and the figures are
    written at the end, and also when the experiment is interrupted (Ctrl-C),
    from the runs finished so far.

    Args:
        spec: a preset name (``"report-table5"``), an :class:`Experiment`, or a list
            of :class:`RunConfig` or dicts (``{"name": "a", "model": "simple",
            "optimizer": "adam", "lr": 0.01}``).
        output_dir: directory for the results; None keeps them in memory only.
        seeds: replaces the experiment's seeds (a list's default is 0-9).
        jobs: worker processes, each with one BLAS thread. Workers are spawned
            and import the calling script, so a script must call this under
            ``if __name__ == "__main__":`` (not needed in notebooks or the REPL).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        resume: skip runs whose file in ``output_dir`` exists for the same
            configuration and seed.
        overwrite: delete earlier results in a non-empty ``output_dir``.
        plots: draw loss_curves.png and accuracy.png (needs matplotlib; without
            it they are skipped with a note).
        quiet: no progress line per run.
        log: where progress lines and notes go (default: stderr).
        in_process: run in this process, one run after another, instead of in
            workers (for debugging and profiling; BLAS threading as configured here,
            which for these small networks is usually slower).
        executor: run on this :class:`concurrent.futures.Executor` (e.g. a Dask
            ``Client.get_executor()``, or :func:`cnnx.experiment.cluster.connect`)
            instead of ``jobs`` local worker processes. Results come back here and only
            this process writes files, so workers need no shared disk. The executor is
            not shut down.

    Returns:
        An :class:`ExperimentResult`.

    Raises:
        ValueError: a bad configuration, seed list or flag combination.
        DeviceError: ``device`` is not usable.
        OutputExistsError: ``output_dir`` holds results and neither ``resume`` nor
            ``overwrite`` is set.
        RunFileError: with ``resume``, a run file belongs to a different configuration.
    """
    start = time.perf_counter()
    say = log or _stderr
    experiment = as_experiment(spec, seeds)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if in_process and executor is not None:
        raise ValueError("in_process runs here; it cannot be combined with an executor")
    if output_dir is None and (resume or overwrite):
        raise ValueError("resume and overwrite need an output directory")
    dev = resolve_device(device)
    for config in experiment.configs:
        check_config(config)

    directory = None
    if output_dir is not None:
        directory = ExperimentDirectory.prepare(output_dir, resume=resume, overwrite=overwrite)
    try:
        return _run(
            experiment, directory, resume=resume, jobs=jobs, device=dev.spec, plots=plots,
            quiet=quiet, say=say, in_process=in_process, executor=executor, start=start,
        )  # fmt: skip
    finally:
        if directory is not None:
            directory.close()


def _run(
    experiment: Experiment,
    directory: ExperimentDirectory | None,
    *,
    resume: bool,
    jobs: int,
    device: str,
    plots: bool,
    quiet: bool,
    say: Callable[[str], None],
    in_process: bool,
    executor: Executor | None,
    start: float,
) -> ExperimentResult:
    done: list[RunResult] = []
    pending = experiment.runs()
    if directory is not None:
        if resume:
            pending = []
            for config, seed in experiment.runs():
                saved = directory.load_run(config, seed)
                if saved is None:
                    pending.append((config, seed))
                else:
                    done.append(saved)
            stray = directory.stray_run_files(experiment)
            if stray:
                say(
                    f"note: {len(stray)} run file(s) in {directory.runs_dir} are not part of "
                    "this experiment and are left out of its tables"
                )
            if not quiet:
                say(f"resuming: {len(done)} of {len(done) + len(pending)} runs already finished")
        directory.write_experiment(experiment, device)

    total = len(done) + len(pending)
    workers = jobs if executor is None else _worker_count(executor)
    summary_args = {"device": device, "jobs": None if in_process else workers}

    def on_result(result: RunResult) -> None:
        done.append(result)
        if directory is not None:
            directory.save_run(result)
            report.write_tables(
                directory.path, experiment, done, curves=False,
                elapsed=time.perf_counter() - start, **summary_args,
            )  # fmt: skip
        if not quiet:
            say(f"[{len(done):>{len(str(total))}}/{total}] {_describe(result)}")

    files: list[Path] = []
    try:
        run_many(
            pending, jobs=jobs, device=device, on_result=on_result, in_process=in_process,
            executor=executor,
        )  # fmt: skip
    except BaseException:
        if directory is not None and done:
            _finish(directory, experiment, done, plots, say, start, summary_args)
            say(
                f"stopped: {len(done)} of {total} runs are saved in {directory.path}; "
                "run again with --resume to finish the rest"
            )
        raise
    if directory is not None:
        text, files = _finish(directory, experiment, done, plots, say, start, summary_args)
    else:
        text = report.summary_markdown(
            experiment, done, elapsed=time.perf_counter() - start, **summary_args
        )
    return ExperimentResult(
        experiment=experiment,
        runs=report.ordered(experiment, done),
        summary=text,
        output_dir=None if directory is None else directory.path,
        files=files,
        elapsed=time.perf_counter() - start,
    )


def _finish(
    directory: ExperimentDirectory,
    experiment: Experiment,
    done: list[RunResult],
    plots: bool,
    say: Callable[[str], None],
    start: float,
    summary_args: dict[str, Any],
) -> tuple[str, list[Path]]:
    text = report.write_tables(
        directory.path, experiment, done, elapsed=time.perf_counter() - start, **summary_args
    )
    files = [directory.path / name for name in (RUNS_CSV, SUMMARY_MD, CURVES_CSV)]
    if plots:
        files += report.write_plots(
            experiment, done, directory.path / LOSS_PNG, directory.path / ACCURACY_PNG, say
        )
    return text, files


def _worker_count(executor: Executor) -> int | None:
    """Workers of a Dask executor (``worker_count()``), None for other executors."""
    count = getattr(executor, "worker_count", None)
    return int(count()) if callable(count) else None


def _describe(result: RunResult) -> str:
    head = f"{result.config.name} seed {result.seed}: "
    if not result.ok:
        return head + f"diverged in epoch {result.diverged_epoch}  ({result.seconds:.2f} s)"
    parts = []
    if result.val_accuracy is not None:
        parts.append(f"val {result.val_accuracy:.4f}")
    parts.append(f"train {result.train_accuracy:.4f}")
    return head + "  ".join(parts) + f"  ({result.seconds:.2f} s)"
