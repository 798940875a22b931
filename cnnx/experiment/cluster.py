"""Running runs on a Dask cluster: a ``concurrent.futures.Executor`` from a ``--dask`` flag.

Dask's ``distributed`` does the scheduling, the data transfer between machines and
the recovery from dead workers; this module only turns the command-line spelling
of a cluster into a connected client and hands out an executor over it::

    --dask local:4                  a LocalCluster of 4 worker processes on this machine
    --dask tcp://HOST:8786          a scheduler started with ``dask scheduler``
    --dask-scheduler-file FILE      the scheduler that wrote FILE (``--scheduler-file``)

Every worker process runs one run at a time with one BLAS thread (the runs are
small networks; see docs/reproduction.md, "Workers and BLAS threads"). Runs on a
GPU (``--device cuda``) ask Dask for the worker resource ``GPU: 1``, so a worker
started with ``dask worker ... --resources GPU=1`` runs one GPU run at a time;
docs/cluster.md shows how to start one worker per GPU.

``distributed`` is an optional dependency (the ``cluster`` extra); it is imported
only when a cluster is asked for.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnx.errors import CnnxError

#: How long to wait for a scheduler before giving up (seconds).
CONNECT_TIMEOUT = 10

#: Thread-count variables of the BLAS/OpenMP libraries NumPy may load; set to 1 in the
#: workers of a local cluster unless the user has set them (read when BLAS loads).
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

INSTALL_HINT = 'pip install "cnnx[cluster]"'
GPU_WORKER_HINT = (
    "start one worker per GPU with: CUDA_VISIBLE_DEVICES=<i> dask worker <scheduler> "
    "--nthreads 1 --resources GPU=1"
)

_LOCAL = re.compile(r"local:(\d+)")


class ClusterError(CnnxError):
    """A cluster cannot be used: Dask is missing, the scheduler is unreachable, a bad flag."""


def require_distributed(flag: str = "--dask") -> Any:
    """Import and return Dask's ``distributed``, or raise a one-line :class:`ClusterError`."""
    try:
        import distributed
    except ImportError:
        raise ClusterError(
            f"{flag} needs Dask's distributed, which is not installed: {INSTALL_HINT}"
        ) from None
    return distributed


@dataclass(frozen=True)
class ClusterSpec:
    """Where to run: exactly one of the three fields is set.

    Attributes:
        address: a scheduler address, ``tcp://HOST:PORT`` (``--dask tcp://...``).
        local_workers: start a LocalCluster of this many worker processes (``--dask local:N``).
        scheduler_file: the JSON file a scheduler wrote (``--dask-scheduler-file``).
    """

    address: str | None = None
    local_workers: int | None = None
    scheduler_file: str | None = None

    @classmethod
    def parse(
        cls, dask: str | None, scheduler_file: str | Path | None = None
    ) -> ClusterSpec | None:
        """The cluster named by ``--dask`` and ``--dask-scheduler-file``; None if neither.

        Raises:
            ClusterError: both flags, or a ``--dask`` value that is neither ``local:N``
                nor a scheduler address.
        """
        if dask is not None and scheduler_file is not None:
            raise ClusterError("give --dask or --dask-scheduler-file, not both")
        if scheduler_file is not None:
            return cls(scheduler_file=str(scheduler_file))
        if dask is None:
            return None
        text = dask.strip()
        match = _LOCAL.fullmatch(text)
        if match:
            workers = int(match.group(1))
            if workers < 1:
                raise ClusterError(f"--dask {dask!r}: local:N needs at least one worker")
            return cls(local_workers=workers)
        if re.fullmatch(r"(tcp|tls|ucx|ws|wss|inproc)://\S+", text) or re.fullmatch(
            r"[\w.-]+:\d+", text
        ):
            return cls(address=text)
        raise ClusterError(
            f"--dask {dask!r}: expected local:N (N worker processes on this machine) or a "
            "scheduler address such as tcp://HOST:8786"
        )

    def describe(self) -> str:
        if self.local_workers is not None:
            return f"a local Dask cluster of {self.local_workers} worker processes"
        if self.scheduler_file is not None:
            return f"the Dask scheduler of {self.scheduler_file}"
        return f"the Dask scheduler at {self.address}"


def local_worker_env() -> dict[str, str]:
    """Environment for local workers: one BLAS thread each, unless the user chose otherwise."""
    return {name: os.environ.get(name, "1") for name in THREAD_ENV_VARS}


def is_gpu_device(device: str) -> bool:
    return str(device).strip().lower().startswith("cuda")


class DaskExecutor(cf.Executor):
    """A ``concurrent.futures.Executor`` running calls on a Dask cluster.

    A thin owner around ``Client.get_executor()``: it keeps the client (and, for
    ``local:N``, the cluster it started) and closes them on :meth:`shutdown`. Calls
    are submitted with ``pure=False`` (two equal calls both run), and with the worker
    resource ``GPU: 1`` when made for a GPU device. ``shutdown(cancel_futures=True)``
    cancels what has not finished on the cluster (runs already executing finish on
    their worker; their results are dropped).

    Attributes:
        client: the ``distributed.Client``.
        cluster: the LocalCluster this executor started, or None.
        spec: the :class:`ClusterSpec` it was made from.
    """

    def __init__(self, client: Any, cluster: Any, spec: ClusterSpec, *, gpu: bool = False):
        self.client = client
        self.cluster = cluster
        self.spec = spec
        self.gpu = gpu
        kwargs: dict[str, Any] = {"pure": False}
        if gpu:
            kwargs["resources"] = {"GPU": 1}
        self._executor = client.get_executor(**kwargs)
        self._closed = False
        self.log: Callable[[str], None] | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        return self._executor.submit(fn, *args, **kwargs)

    def share(self, value: Any) -> Any:
        """Send ``value`` (e.g. a data set's arrays) to the cluster once.

        Returns a Dask future to pass to :meth:`submit` in place of the value:
        Dask hands the value itself to the function on the worker, copying it
        between workers as they need it, so a large array crosses the network once
        per worker instead of once per call.
        """
        return self.client.scatter(value, broadcast=False, hash=False)

    def workers_have_files(self, paths: Iterable[str | Path]) -> bool:
        """True if every worker connected now can read every one of ``paths``."""
        wanted = [str(p) for p in paths]
        if not wanted:
            return True
        found = self.client.run(_all_readable, wanted)
        return bool(found) and all(found.values())

    def worker_count(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def describe(self) -> str:
        return f"{self.spec.describe()} ({self.worker_count()} workers now)"

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # Leaving on an error (Ctrl-C included) cancels what has not run yet instead of
        # waiting for it, as concurrent.futures' default exit would.
        self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._executor.shutdown(wait=wait and not cancel_futures)
        finally:
            # Closing the client releases its futures: the scheduler forgets the
            # tasks nobody waits for any more, so pending runs never start.
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


def _all_readable(paths: list[str]) -> bool:
    return all(os.access(p, os.R_OK) for p in paths)


def data_paths(spec: Any) -> list[str]:
    """The files and directories a run reads its data from (its path options that are set).

    A source's default location (the bundled workbook, ``$CNNX_DATA_DIR/mnist``) is not
    listed: every worker resolves its own.
    """
    from cnnx.runs import get_source

    source = get_source(spec.dataset)
    return [
        str(spec.dataset_options[name])
        for name in source.path_options
        if spec.dataset_options.get(name) is not None
    ]


def data_sender(executor: cf.Executor, specs: Iterable[Any]) -> Callable[[Any], Any] | None:
    """How runs on ``executor`` get their data: None if the workers read it themselves.

    On a Dask cluster where some connected worker cannot read one of the runs' data
    files, the submitting process loads each run's data (``cnnx.runs.load_data``) and
    sends it with the run (:meth:`DaskExecutor.share`); the worker then trains on
    those arrays (``runs.execute(spec, data=...)``). Other executors share this
    machine's files and get None.

    Returns:
        ``send(spec) -> value to pass as the run's data``, or None.
    """
    if not isinstance(executor, DaskExecutor):
        return None
    paths = sorted({path for spec in specs for path in data_paths(spec)})
    if executor.workers_have_files(paths):
        return None
    from cnnx.runs import load_data

    if executor.log is not None:
        executor.log(
            "note: some workers cannot read "
            + ", ".join(paths)
            + "; each run's data is sent to them from here"
        )

    def send(spec: Any) -> Any:
        return executor.share(load_data(spec))

    return send


def connect(
    spec: ClusterSpec,
    *,
    device: str = "cpu",
    timeout: float = CONNECT_TIMEOUT,
    log: Callable[[str], None] | None = None,
) -> DaskExecutor:
    """Start or reach the cluster ``spec`` names and return an executor over it.

    Args:
        spec: from :meth:`ClusterSpec.parse`.
        device: the device the runs use; a GPU device makes every call ask for the
            worker resource ``GPU: 1`` (and gives each local worker one).
        timeout: seconds to wait for a scheduler.
        log: where to say what was connected to (default: nowhere).

    Raises:
        ClusterError: distributed is missing, the scheduler file is missing, the
            scheduler does not answer, or (GPU) no connected worker offers a GPU.
    """
    distributed = require_distributed("--dask-scheduler-file" if spec.scheduler_file else "--dask")
    gpu = is_gpu_device(device)
    cluster = None
    try:
        if spec.local_workers is not None:
            # Worker processes (not threads): NumPy code holds the GIL in places, and
            # a dead worker must not take the others with it.
            cluster = distributed.LocalCluster(
                n_workers=spec.local_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env=local_worker_env(),
                resources={"GPU": 1} if gpu else None,
            )
            client = distributed.Client(cluster, timeout=timeout)
        elif spec.scheduler_file is not None:
            path = Path(spec.scheduler_file)
            if not path.is_file():
                raise ClusterError(
                    f"--dask-scheduler-file {path}: no such file (start the scheduler with "
                    f"`dask scheduler --scheduler-file {path}` first)"
                )
            client = distributed.Client(scheduler_file=str(path), timeout=timeout)
        else:
            client = distributed.Client(spec.address, timeout=timeout)
    except ClusterError:
        raise
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise ClusterError(
            f"cannot reach {spec.describe()}: {exc} (is `dask scheduler` running there, "
            "and the port open?)"
        ) from None
    executor = DaskExecutor(client, cluster, spec, gpu=gpu)
    executor.log = log
    if gpu and spec.local_workers is None:
        workers = client.scheduler_info().get("workers", {})
        if workers and not any(w.get("resources", {}).get("GPU") for w in workers.values()):
            executor.shutdown()
            raise ClusterError(
                f"--device {device}: none of the {len(workers)} workers of "
                f"{spec.describe()} offers a GPU; {GPU_WORKER_HINT}"
            )
    if log is not None:
        log(f"running on {executor.describe()}")
    return executor
