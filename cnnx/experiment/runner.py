"""Running an experiment's runs: one run (:func:`execute`), and many, in worker processes.

A run is self-contained: its seed draws the train/validation split, the initial
weights and the minibatch order, and nothing else is random, so its result does
not depend on which process runs it or when. Worker processes are started with
the "spawn" method (safe with CuPy, the same on every OS).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from cnnx.experiment.grid import RunConfig
from cnnx.runs import DIVERGED, OK, RunData, RunOutcome
from cnnx.runs import execute as execute_spec

#: Thread-count variables of the BLAS and OpenMP libraries NumPy may use. They are
#: read once, when the library loads, so they must be in a worker's environment
#: before it imports NumPy.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

CURVE_FIELDS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class RunResult:
    """What one run produced.

    For a run that finished (``status == "ok"``) the metrics are those of the final
    weights: ``train_*`` from one pass over the training set after the last update,
    ``val_*`` from the validation pass after the last epoch. For a diverged run
    they are those of its last epoch with a finite loss (``epochs`` of them), and
    ``diverged_epoch`` is the epoch whose loss was not finite.

    Attributes:
        config: the configuration; seed: the run's seed.
        status: ``"ok"`` or ``"diverged"``.
        epochs: epochs completed with a finite loss.
        train_accuracy, train_loss: on the training split.
        val_accuracy, val_loss: on the validation split; None without one.
        all_accuracy: on all samples (training + validation) with the final
            weights; None for a diverged run.
        train_samples, val_samples: sizes of the split.
        seconds: wall time of the run (data split, model, training, evaluation).
        device: where it ran (``"cpu"``, ``"cuda:0"``).
        diverged_epoch: the epoch whose loss was NaN/inf; None if it finished.
        last_finite_loss: the last finite epoch loss of a diverged run.
        curves: per-epoch lists ``epoch``, ``loss``, ``accuracy``, ``val_loss``,
            ``val_accuracy`` (training loss/accuracy as :func:`cnnx.fit` records them).
    """

    config: RunConfig
    seed: int
    status: str
    epochs: int
    train_accuracy: float | None
    train_loss: float | None
    val_accuracy: float | None
    val_loss: float | None
    all_accuracy: float | None
    train_samples: int
    val_samples: int
    seconds: float
    device: str
    diverged_epoch: int | None = None
    last_finite_loss: float | None = None
    curves: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the configuration as :meth:`RunConfig.to_dict`, curves as lists."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "config"}
        return {"config": self.config.to_dict(), **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """Rebuild a result from :meth:`to_dict`'s output (a run file).

        Raises:
            KeyError, TypeError, ValueError: the dict is not a run record.
        """
        fields = dict(data)
        config = RunConfig.from_dict(fields.pop("config"))
        missing = [k for k in cls.__dataclass_fields__ if k not in fields and k != "config"]
        missing = [k for k in missing if k not in ("diverged_epoch", "last_finite_loss", "curves")]
        if missing:
            raise KeyError(f"missing fields {missing}")
        if fields["status"] not in (OK, DIVERGED):
            raise ValueError(f"status must be {OK!r} or {DIVERGED!r}, got {fields['status']!r}")
        known = {k: v for k, v in fields.items() if k in cls.__dataclass_fields__}
        return cls(config=config, **known)


# --- one run ---------------------------------------------------------------------------


def execute(
    config: RunConfig | Mapping[str, Any],
    seed: int,
    device: str = "cpu",
    *,
    data: RunData | None = None,
) -> RunResult:
    """Train one configuration with one seed and measure it, through :func:`cnnx.runs.execute`.

    The seed draws the stratified split, the weights and the minibatch order (see
    :class:`cnnx.runs.RunSpec`). A run whose loss becomes NaN or infinite is returned
    with status ``"diverged"``, not raised.

    Args:
        config: the configuration (or its dict form).
        seed: non-negative integer.
        device: device spec (``"cpu"``, ``"cuda:0"``).
        data: the run's data when already loaded (e.g. sent to a cluster worker).

    Returns:
        A :class:`RunResult`.
    """
    if not isinstance(config, RunConfig):
        config = RunConfig.from_dict(config)
    outcome = execute_spec(config.spec(seed, device), data=data)
    return result_of(config, outcome)


def result_of(config: RunConfig, outcome: RunOutcome) -> RunResult:
    """The experiment's record of one executed run."""
    records = outcome.history.records
    curves: dict[str, list[Any]] = {"epoch": [r.epoch for r in records]}
    curves.update({name: [getattr(r, name) for r in records] for name in CURVE_FIELDS})
    n_train, n_val = outcome.train_samples, outcome.val_samples
    common = {
        "config": config, "seed": int(outcome.spec.seed), "epochs": len(records),
        "train_samples": n_train, "val_samples": n_val, "device": outcome.device,
        "curves": curves, "status": outcome.status, "train_accuracy": outcome.train_accuracy,
        "train_loss": outcome.train_loss, "val_accuracy": outcome.val_accuracy,
        "val_loss": outcome.val_loss, "seconds": outcome.seconds,
    }  # fmt: skip
    if outcome.diverged is not None:
        return RunResult(
            all_accuracy=None,
            diverged_epoch=outcome.diverged.epoch,
            last_finite_loss=outcome.diverged.last_finite_loss,
            **common,
        )
    correct = outcome.train_accuracy * n_train
    if n_val:
        correct += outcome.val_accuracy * n_val
    return RunResult(all_accuracy=round(correct) / (n_train + n_val), **common)


def _execute_dict(
    config: dict[str, Any], seed: int, device: str, data: RunData | None = None
) -> dict[str, Any]:
    """Worker entry point: plain dicts in and out, so only data crosses processes
    (and, for a cluster worker without the data files, the run's arrays)."""
    return execute(RunConfig.from_dict(config), seed, device, data=data).to_dict()


# --- many runs -------------------------------------------------------------------------


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Make processes started inside the block use one BLAS/OpenMP thread each.

    N workers on N cores scale only if each uses one core; with its default, every
    worker's BLAS would start one thread per core and they would fight over them
    (and for networks this small even one process gains nothing from more threads).
    Variables the user has set are left as they are. The parent's own environment
    is restored on exit (its already loaded BLAS is unaffected either way).
    """
    saved = {name: os.environ.get(name) for name in THREAD_ENV_VARS}
    for name in THREAD_ENV_VARS:
        os.environ.setdefault(name, "1")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_many(
    runs: Sequence[tuple[RunConfig, int]],
    *,
    jobs: int = 1,
    device: str = "cpu",
    on_result: Callable[[RunResult], None] | None = None,
    in_process: bool = False,
    executor: Executor | None = None,
) -> list[RunResult]:
    """Run every (configuration, seed) pair in ``jobs`` worker processes.

    Workers are spawned processes, each limited to one BLAS thread (see
    :func:`single_threaded_blas`): the networks here are small, BLAS threads gain
    little on them, and on a busy machine they cost a lot - on a loaded 2-core
    machine one toy-kernel run with k = 5 took 8.1 s with NumPy's default
    threading and 0.8 s with one (about 0.75 s either way when idle).
    ``in_process=True`` runs them one after another in this process instead, with
    whatever BLAS threading it has (for debugging and profiling). Either way each
    result is handed to ``on_result`` as soon as it exists (so it can be saved),
    and the returned list is in the order of ``runs``, whatever order they
    finished in.

    ``executor`` runs them on any :class:`concurrent.futures.Executor` instead (a Dask
    ``Client.get_executor()``, a thread pool); ``jobs`` is then ignored, and the
    executor is left running (pending runs are cancelled on an error).

    Raises:
        Whatever a run raises other than divergence (a bug, or a GPU out of memory);
        the pool is shut down first, and results already passed to ``on_result``
        stay saved.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    results: dict[int, RunResult] = {}

    def accept(index: int, result: RunResult) -> None:
        results[index] = result
        if on_result is not None:
            on_result(result)

    if in_process:
        for index, (config, seed) in enumerate(runs):
            accept(index, execute(config, seed, device))
        return [results[i] for i in range(len(runs))]
    if not runs:
        return []
    if executor is not None:
        _collect(executor, runs, device, accept)
        return [results[i] for i in range(len(runs))]

    context = multiprocessing.get_context("spawn")
    with single_threaded_blas():
        pool = ProcessPoolExecutor(
            max_workers=min(jobs, len(runs)), mp_context=context,
            initializer=watch_parent, initargs=(os.getpid(),),
        )  # fmt: skip
        try:
            _collect(pool, runs, device, accept)
        except BaseException:
            stop_workers(pool)
            raise
        pool.shutdown()
    return [results[i] for i in range(len(runs))]


def watch_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Worker initializer: exit as soon as the parent process is gone.

    A worker whose parent was killed (SIGKILL, a crash) would otherwise finish its run
    and linger; it checks every ``interval`` seconds whether it has been re-parented,
    from a daemon thread, and then exits at once (the run's result has nowhere to go).
    """

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="cnnx-parent-watch", daemon=True).start()


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what is pending and end running workers now (Ctrl-C, SIGTERM, an error).

    ``shutdown(cancel_futures=True)`` alone lets a running run finish first, which for
    a long run means the workers (and multiprocessing's resource tracker, which lives as
    long as they do) outlive the command that started them.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)


def _collect(
    executor: Executor,
    runs: Sequence[tuple[RunConfig, int]],
    device: str,
    accept: Callable[[int, RunResult], None],
) -> None:
    """Submit every run to ``executor`` and accept each result as it arrives.

    On a Dask cluster whose workers cannot read the runs' data files, each run's
    arrays are loaded here and sent along (:func:`cnnx.experiment.cluster.data_sender`).
    """
    from cnnx.experiment.cluster import data_sender

    send = data_sender(executor, [config.spec(seed, device) for config, seed in runs])
    pending: dict[Future[dict[str, Any]], int] = {}
    for index, (config, seed) in enumerate(runs):
        args: tuple[Any, ...] = (config.to_dict(), seed, device)
        if send is not None:
            args += (send(config.spec(seed, device)),)
        pending[executor.submit(_execute_dict, *args)] = index
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=pending.__getitem__):
                accept(pending.pop(future), RunResult.from_dict(future.result()))
    except BaseException:
        for future in pending:
            future.cancel()
        raise
