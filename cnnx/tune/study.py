"""``tune``: an Optuna study over a run definition, its trials run here, in worker
processes or on a Dask cluster.

Optuna does the searching (samplers, the median pruner, the storage that lets
several processes share one study); this module asks it for trials, runs them with
:func:`cnnx.tune.trial.run_trial` and tells it the results (Optuna's ask-and-tell
interface), at most ``jobs`` (or the cluster's worker count) at a time.

Objective and ties: a trial's value is the mean final validation accuracy over the
seeds; Optuna maximises it. The best trial is the one with the highest value and,
among exactly equal values, the lowest mean validation loss (then the lowest trial
number). The tie-break is applied exactly when the best trial is picked, and the
samplers see the accuracy only, unchanged.

Random search is reproducible trial by trial: trial ``k``'s point is drawn by
Optuna's RandomSampler seeded from ``(sampler_seed, k)``, so it is the same with
any ``jobs``, and processes sharing a study draw different points (their trials
have different numbers).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import multiprocessing
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnx.errors import CnnxError
from cnnx.experiment.cluster import data_sender
from cnnx.tune.space import SearchSpace, apply
from cnnx.tune.trial import COMPLETE, FAIL, PRUNED, run_trial

SAMPLERS = ("random", "tpe")
DEFAULT_STUDY_NAME = "cnnx-tune"
INSTALL_HINT = 'pip install "cnnx[tune]"'
#: Median pruner settings: trials are compared after 5 finished ones, from epoch 1 on.
PRUNER = {"n_startup_trials": 5, "n_warmup_steps": 0}


class TuneError(CnnxError):
    """A search cannot run: Optuna missing, a study that does not match, a bad option."""


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise TuneError(f"cnnx tune needs Optuna, which is not installed: {INSTALL_HINT}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def make_pruner(settings: Mapping[str, Any] | None) -> Any:
    """Optuna's MedianPruner with ``settings``, or its NopPruner for None."""
    import optuna

    if settings is None:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(**settings)


def trial_seed(sampler_seed: int, number: int) -> int:
    """The RandomSampler seed of trial ``number``: a SeedSequence of both, one 32-bit word."""
    return int(np.random.SeedSequence([int(sampler_seed), int(number)]).generate_state(1)[0])


def make_sampler(name: str, seed: int) -> Any:
    optuna = require_optuna()
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise TuneError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes:
        study: the Optuna study (all its trials, from every process that shared it).
        best: the best finished trial (``optuna.trial.FrozenTrial``), or None.
        best_spec: the best trial's run definition (seed: the first of ``seeds``).
        summary: the text of summary.md.
        output_dir: where the files are, or None; files: the files written.
        ran: numbers of the trials this call ran; elapsed: seconds of this call.
    """

    study: Any
    best: Any
    best_spec: Any
    summary: str
    output_dir: Path | None
    files: list[Path] = field(default_factory=list)
    ran: list[int] = field(default_factory=list)
    elapsed: float = 0.0


def best_trial(trials: Sequence[Any]) -> Any:
    """The finished trial with the highest value, then lowest ``val_loss``, then number."""
    finished = [t for t in trials if t.state.name == COMPLETE and t.value is not None]
    if not finished:
        return None

    def key(t: Any) -> tuple[float, float, int]:
        loss = t.user_attrs.get("val_loss")
        return (-t.value, float("inf") if loss is None else loss, t.number)

    return min(finished, key=key)


def open_storage(url: str | None, attempts: int = 5) -> Any:
    """Optuna's RDBStorage for ``url`` (None: in memory).

    Two processes starting on a new SQLite file at the same moment both try to create
    its tables and one fails; the retry finds them made. SQLite connections wait up to
    60 s for a lock instead of 5, as trials of several processes write to one file.

    Raises:
        TuneError: the storage cannot be opened (the message names the URL).
    """
    if url is None:
        return None
    optuna = require_optuna()
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except (ValueError, ImportError) as exc:
            raise TuneError(f"--storage {url}: {exc}") from None
        except Exception as exc:  # sqlalchemy's OperationalError, from a creation race
            if attempt == attempts - 1:
                raise TuneError(f"--storage {url}: {exc}".splitlines()[0]) from None
            time.sleep(0.2 * (attempt + 1))
    return None


def open_study(
    base_fields: Mapping[str, Any],
    space: SearchSpace,
    seeds: Sequence[int],
    *,
    sampler: str,
    sampler_seed: int,
    prune: bool,
    storage: str | None,
    study_name: str | None,
) -> Any:
    """Create the study, or join the one of that name in ``storage``.

    A joined study must search the same space over the same base run and seeds;
    its stored description is compared with this one.

    Raises:
        TuneError: the stored study searches something else.
    """
    optuna = require_optuna()
    try:
        study = optuna.create_study(
            storage=open_storage(storage),
            sampler=make_sampler(sampler, sampler_seed),
            pruner=make_pruner(PRUNER if prune else None),
            study_name=study_name or DEFAULT_STUDY_NAME,
            direction="maximize",
            load_if_exists=True,
        )
    except (ValueError, ImportError) as exc:
        raise TuneError(f"--storage {storage}: {exc}") from None
    description = {
        # where a trial runs is not part of what is searched: processes on a GPU machine
        # and on a CPU machine may share a study
        "base": {k: v for k, v in base_fields.items() if k != "device"},
        "space": space.describe(),
        "seeds": [int(s) for s in seeds],
    }
    description = json.loads(json.dumps(description))
    stored = study.user_attrs.get("cnnx")
    if stored is None:
        study.set_user_attr("cnnx", description)
    elif stored != description:
        changed = [k for k in description if stored.get(k) != description[k]]
        raise TuneError(
            f"study {study.study_name!r} in {storage} searches a different "
            f"{' and '.join(changed)}; use another --study-name"
        )
    return study


def _host() -> str:
    return socket.gethostname()


def _trial_in_worker(
    spec_fields: Mapping[str, Any],
    seeds: Sequence[int],
    pruning: Mapping[str, Any] | None,
    data: Mapping[int, Any] | None = None,
) -> dict[str, Any]:
    """Worker entry point: plain data in and out, and where it ran."""
    result = run_trial(spec_fields, seeds, pruning=pruning, data=data)
    result["host"] = _host()
    return result


def tune(
    base: Any,
    space: SearchSpace,
    *,
    trials: int,
    seeds: Sequence[int] = (0,),
    sampler: str = "random",
    sampler_seed: int = 0,
    prune: bool = False,
    storage: str | None = None,
    study_name: str | None = None,
    jobs: int = 1,
    executor: cf.Executor | None = None,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    plots: bool = True,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> TuneResult:
    """Search ``space`` around the run definition ``base`` with Optuna.

    Args:
        base: a ``cnnx.runs.RunSpec``: everything that is not searched.
        space: the searched parameters.
        trials: trials this call runs (a shared study ends with the sum of all
            processes' trials).
        seeds: every trial trains once per seed; its value is the mean final
            validation accuracy.
        sampler: ``"random"`` (the default, as notes 004 recommend) or ``"tpe"``.
        sampler_seed: seeds the sampler (random search: trial k's point depends on
            this seed and k only).
        prune: stop unpromising trials early with Optuna's MedianPruner on the
            per-epoch validation accuracy.
        storage: an Optuna storage URL (``sqlite:///study.db``) to share the study
            between processes and keep it; None keeps it in memory (with ``jobs`` > 1
            or an executor and ``prune``, ``output_dir/study.db`` is used).
        study_name: the study's name in ``storage`` (default ``"cnnx-tune"``).
        jobs: trials at a time in spawned worker processes (one BLAS thread each);
            1 runs them in this process.
        executor: any ``concurrent.futures.Executor`` to run trials on instead (a
            :class:`cnnx.experiment.cluster.DaskExecutor` for ``--dask``).
        output_dir: write trials.csv, best.json, summary.md and the figures here.
        overwrite: replace those files in a non-empty ``output_dir``.
        plots: draw the figures (needs matplotlib).
        quiet: no line per trial.
        log: where progress goes (default: stderr).

    Returns:
        A :class:`TuneResult`.

    Raises:
        TuneError, SpaceError, ConfigError: bad options; Optuna missing.
    """
    from cnnx import runs
    from cnnx.tune import report

    start = time.perf_counter()
    say = log or report.stderr
    optuna = require_optuna()
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise TuneError(f"trials must be a positive integer, got {trials!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise TuneError(f"jobs must be a positive integer, got {jobs!r}")
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise TuneError(f"seeds must be distinct and at least one, got {list(seeds)}")
    if sampler not in SAMPLERS:
        raise TuneError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    space.check(base.optimizer)
    base_fields = base.to_dict()
    directory = None
    if output_dir is not None:
        directory = report.prepare(output_dir, overwrite=overwrite)
    parallel = executor is not None or jobs > 1
    if parallel and prune and storage is None:
        if directory is None:
            raise TuneError("--prune with parallel trials needs --storage or --output-dir")
        database = directory / report.STUDY_DB
        if overwrite:
            database.unlink(missing_ok=True)  # the study this directory's last search made
        storage = f"sqlite:///{database.resolve()}"
    study = open_study(
        base_fields, space, seeds, sampler=sampler, sampler_seed=sampler_seed,
        prune=prune, storage=storage, study_name=study_name,
    )  # fmt: skip
    _check_workers_reach(executor, storage, prune)
    if not quiet:
        say(
            f"study {study.study_name!r}: {trials} trials of {', '.join(space.describe())}; "
            f"{sampler} sampler (seed {sampler_seed}), seeds {list(seeds)}"
            + (", median pruning" if prune else "")
        )

    def ask() -> tuple[Any, dict[str, Any] | None, str]:
        trial = study.ask()
        if sampler == "random":
            # Trial k draws from (sampler_seed, k) only: reproducible with any jobs,
            # distinct across processes sharing the study. The random sampler keeps no
            # state between trials, so a fresh one per trial loses nothing.
            study.sampler = optuna.samplers.RandomSampler(
                seed=trial_seed(sampler_seed, trial.number)
            )
        values = space.suggest(trial, base.optimizer)
        fields = apply(base_fields, values)
        try:
            spec = runs.RunSpec.from_dict(fields, source=f"trial {trial.number}")
        except (CnnxError, ValueError) as exc:
            return trial, None, str(exc)
        return trial, spec.to_dict(), ""

    ran: list[int] = []
    count = len(str(trials))

    def tell(trial: Any, result: dict[str, Any]) -> None:
        for key in ("val_loss", "accuracies", "losses", "epochs", "seconds", "note", "host"):
            if key in result:
                trial.set_user_attr(key, result[key])
        state = {
            COMPLETE: optuna.trial.TrialState.COMPLETE,
            PRUNED: optuna.trial.TrialState.PRUNED,
            FAIL: optuna.trial.TrialState.FAIL,
        }[result["state"]]
        value = result["value"] if state == optuna.trial.TrialState.COMPLETE else None
        study.tell(trial, value, state=state)
        ran.append(trial.number)
        if not quiet:
            say(f"[{len(ran):>{count}}/{trials}] " + report.describe_trial(trial.number, result))

    def failed(note: str) -> dict[str, Any]:
        return {"state": FAIL, "value": None, "seconds": 0.0, "note": note}

    pool = executor
    own_pool = False
    environment = contextlib.ExitStack()
    if pool is None and jobs > 1:
        from cnnx.experiment.runner import single_threaded_blas

        # Worker processes start at the first submits, so the one-BLAS-thread
        # environment must hold for the whole loop, not just the pool's creation.
        environment.enter_context(single_threaded_blas())
        pool = cf.ProcessPoolExecutor(
            max_workers=min(jobs, trials), mp_context=multiprocessing.get_context("spawn")
        )
        own_pool = True
    in_flight: dict[cf.Future, Any] = {}
    interrupted = True
    try:
        if pool is None:
            for _ in range(trials):
                trial, fields, error = ask()
                if fields is None:
                    tell(trial, failed(error))
                    continue
                result = run_trial(fields, seeds, trial=trial if prune else None)
                result["host"] = _host()
                tell(trial, result)
        else:
            capacity = jobs if executor is None else max(jobs, _worker_count(executor))
            # Trials change no data option, so each seed's data is the same in every trial:
            # sent once per seed, and only to a cluster whose workers lack the files.
            send = data_sender(pool, [base.replace(seed=s) for s in seeds])
            data = None if send is None else {s: send(base.replace(seed=s)) for s in seeds}
            asked = 0
            while asked < trials or in_flight:
                while asked < trials and len(in_flight) < capacity:
                    trial, fields, error = ask()
                    asked += 1
                    if fields is None:
                        tell(trial, failed(error))
                        continue
                    pruning = None
                    if prune:
                        pruning = {
                            "storage": storage,
                            "study_name": study.study_name,
                            # Optuna's storages address a running trial by its id.
                            "trial_id": trial._trial_id,
                            "pruner": PRUNER,
                        }
                    future = pool.submit(_trial_in_worker, fields, seeds, pruning, data)
                    in_flight[future] = trial
                if not in_flight:
                    continue
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: in_flight[f].number):
                    tell(in_flight.pop(future), future.result())
        interrupted = False
    finally:
        if interrupted:
            for future, trial in in_flight.items():
                future.cancel()
                trial.set_user_attr("note", "interrupted")
                study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        if own_pool:
            pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
        environment.close()
        if interrupted and directory is not None:
            report.write(directory, study, seeds, base, space, plots=False, log=say)
    files: list[Path] = []
    best = best_trial(study.get_trials(deepcopy=False))
    best_spec = None if best is None else report.spec_of(best, base, space, seeds)
    text = report.summary_markdown(
        study, seeds, base, space, elapsed=time.perf_counter() - start,
        storage=storage, sampler=sampler, sampler_seed=sampler_seed, prune=prune,
        best_json=report.BEST_JSON if output_dir is None else
        str(Path(output_dir) / report.BEST_JSON),
    )  # fmt: skip
    if directory is not None:
        files = report.write(
            directory, study, seeds, base, space, plots=plots, log=say, summary=text
        )
    return TuneResult(
        study=study, best=best, best_spec=best_spec, summary=text,
        output_dir=directory, files=files, ran=ran, elapsed=time.perf_counter() - start,
    )  # fmt: skip


def _check_workers_reach(executor: cf.Executor | None, storage: str | None, prune: bool) -> None:
    """Pruning on a Dask cluster needs a storage every worker can open: check an SQLite file.

    Raises:
        TuneError: some worker cannot read the SQLite file.
    """
    check = getattr(executor, "workers_have_files", None)
    if not prune or storage is None or not callable(check) or not storage.startswith("sqlite:///"):
        return
    path = storage[len("sqlite:///") :]
    if not check([path]):
        raise TuneError(
            f"--prune on this cluster: some workers cannot open {path}; give a --storage every "
            "worker reaches (an SQLite file on a shared file system, or a database server URL)"
        )


def _worker_count(executor: cf.Executor) -> int:
    count = getattr(executor, "worker_count", None)
    return int(count()) if callable(count) else 1
