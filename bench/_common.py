"""Shared helpers for the benchmark scripts in ``bench/``.

Machine and BLAS description, thread pinning, timing, peak memory, MNIST reading, the cnnx
training step, the worker-process protocol and table printing.

NumPy is imported only inside functions: OpenBLAS and MKL read their thread-count environment
variables once, when the library loads, so :func:`set_thread_env` must run before the first
``import numpy`` of the process.
"""

from __future__ import annotations

import ctypes
import datetime
import gzip
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

DEFAULT_MNIST_ROOT = "/work/shared/data/mnist"
MNIST_IMAGES = "t10k-images-idx3-ubyte.gz"
MNIST_LABELS = "t10k-labels-idx1-ubyte.gz"

RESULT_PREFIX = "BENCH_RESULT "


# --------------------------------------------------------------------------- threads


def available_cores() -> int:
    """Number of CPU cores this process may run on (affinity mask, else ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def set_thread_env(threads: int) -> None:
    """Set every BLAS/OpenMP thread-count variable to ``threads``.

    Must run before NumPy or torch is imported in this process; raises RuntimeError otherwise,
    because the already loaded BLAS would silently keep its own thread count.
    """
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    loaded = [m for m in ("numpy", "torch") if m in sys.modules]
    if loaded:
        raise RuntimeError(
            f"set_thread_env() called after {', '.join(loaded)} was imported; "
            "the thread count would not take effect"
        )
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)


def thread_env() -> dict[str, str]:
    """The thread-count environment variables as this process sees them."""
    return {name: os.environ.get(name, "(unset)") for name in THREAD_ENV_VARS}


def _loaded_libraries() -> list[str]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return []
    return sorted(paths)


def blas_runtime() -> dict[str, Any]:
    """Describe the BLAS that NumPy actually loaded, asking the library itself through ctypes.

    Works for OpenBLAS (numpy's scipy-openblas wheels and system builds) on Linux. Returns
    ``{"library": path or None, "config": str, "threads": int or None}``; fields stay None or
    "unknown" where the library cannot be asked.
    """
    import numpy  # noqa: F401  (loads the BLAS so that it shows up in /proc/self/maps)

    info: dict[str, Any] = {"library": None, "config": "unknown", "threads": None}
    candidates = [p for p in _loaded_libraries() if "openblas" in Path(p).name.lower()]
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (
            ("scipy_openblas", "64_"),
            ("scipy_openblas", ""),
            ("openblas", "64_"),
            ("openblas", ""),
        ):
            get_threads = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            get_config = getattr(lib, f"{prefix}_get_config{suffix}", None)
            if get_threads is None:
                continue
            info["library"] = path
            info["threads"] = int(get_threads())
            if get_config is not None:
                get_config.restype = ctypes.c_char_p
                info["config"] = get_config().decode(errors="replace")
            return info
    return info


def blas_kernel() -> str:
    """The BLAS library, version, CPU kernel and threads NumPy uses, as threadpoolctl reports
    them (``architecture`` is the kernel OpenBLAS chose for this CPU)."""
    import numpy  # noqa: F401  (load the BLAS first)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return "no BLAS found by threadpoolctl"
    return "; ".join(
        f"{p.get('internal_api')} {p.get('version')} kernel={p.get('architecture', '?')} "
        f"threads={p.get('num_threads')}"
        for p in pools
    )


def numpy_build_blas() -> str:
    """Name and version of the BLAS NumPy was built against, from ``numpy.show_config``."""
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except (TypeError, KeyError):  # NumPy < 1.25 has no mode="dicts"
        return "unknown (numpy < 1.25; see numpy.show_config())"


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    """1/5/15-minute load average as text, or "n/a" where the OS has none."""
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def command_line() -> str:
    """The exact command line that started this process, shell-quoted."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(argv)


def torch_version() -> str:
    """Installed torch version without importing torch (so the parent stays light)."""
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "not installed"


def cnnx_version() -> str:
    try:
        from cnnx import __version__
    except ImportError:
        return "not importable"
    return __version__


def machine_report(threads: int) -> list[tuple[str, str]]:
    """Lines that describe where and how a benchmark ran. Imports NumPy."""
    import numpy as np

    blas = blas_runtime()
    return [
        ("date", datetime.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("command", command_line()),
        ("cpu", f"{cpu_model()} ({platform.machine()})"),
        ("cores", f"{available_cores()} usable, {os.cpu_count()} online"),
        ("threads", f"{threads} requested (BLAS, OpenMP and torch.set_num_threads)"),
        ("thread env", " ".join(f"{k}={v}" for k, v in thread_env().items())),
        ("load average", f"{load_average()} (1/5/15 min, at start)"),
        (
            "speed probe",
            f"{speed_probe_ms():.1f} ms for 10^6 Python additions, at start "
            "(lower is faster; see bench/README.md)",
        ),
        ("python", platform.python_version()),
        ("numpy", f"{np.__version__}, built with {numpy_build_blas()}"),
        ("numpy BLAS at runtime", f"{blas['config']}; threads={blas['threads']}"),
        ("BLAS (threadpoolctl)", blas_kernel()),
        (
            "OPENBLAS_* env",
            " ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("OPENBLAS_"))
            or "(none set)",
        ),
        ("torch", torch_version()),
        ("cnnx", cnnx_version()),
    ]


# --------------------------------------------------------------------------- memory, timing


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (``getrusage`` ``ru_maxrss``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mib() -> float | None:
    """Resident set size right now, in MiB, from /proc/self/statm (None where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes have been busy since boot, from /proc/stat (Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


class OtherLoadProbe:
    """How many cores other processes kept busy while a measurement ran.

    Compares the machine's busy CPU time (/proc/stat) with this process's own CPU time over
    the same wall-clock interval. About 0 means the machine was otherwise idle; on a 2-core
    machine 1.0 means another process held one core the whole time, which slows every
    multi-threaded row. Resolution is one clock tick (usually 10 ms), so short intervals
    are coarse. None where /proc/stat is missing.
    """

    def __init__(self) -> None:
        import time

        self._clock = time.perf_counter
        self._start = (self._clock(), _machine_busy_seconds(), self._own_cpu())

    @staticmethod
    def _own_cpu() -> float:
        t = os.times()
        return t.user + t.system

    def cores(self) -> float | None:
        wall0, busy0, own0 = self._start
        busy1 = _machine_busy_seconds()
        if busy0 is None or busy1 is None:
            return None
        wall = self._clock() - wall0
        others = (busy1 - busy0) - (self._own_cpu() - own0)
        return max(others, 0.0) / wall if wall > 0 else None


def speed_probe_ms() -> float:
    """Milliseconds a fixed pure-Python loop (1,000,000 additions) takes; median of 3.

    A yardstick for the machine's single-core speed at the moment, printed next to the
    measurements: on shared or virtual machines it drifts by tens of percent from minute to
    minute, and every timing drifts with it. Lower is faster.
    """
    import time

    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# --------------------------------------------------------------------------- MNIST


def _read_idx(path: Path, magic: int, ndim: int) -> Any:
    import numpy as np

    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SystemExit(
            f"error: MNIST file {path} not found; pass --data-root DIR holding "
            f"{MNIST_IMAGES} and {MNIST_LABELS}, or use --synthetic"
        ) from None
    except (OSError, EOFError) as exc:
        raise SystemExit(f"error: cannot read {path} as gzip: {exc}") from None
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise SystemExit(f"error: {path} is too short for an IDX header ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise SystemExit(f"error: {path} has IDX magic {found:#010x}, expected {magic:#010x}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    count = 1
    for d in dims:
        count *= d
    if len(raw) - header_len != count:
        raise SystemExit(
            f"error: {path} holds {len(raw) - header_len} data bytes, header says {count}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def load_mnist_test(root: str | os.PathLike[str], samples: int) -> tuple[Any, Any, str]:
    """The first ``samples`` images of the MNIST t10k set.

    Returns:
        ``(X, y, source)``: X ``(samples, 1, 28, 28)`` float32 in [0, 1], y ``(samples,)``
        int64, and a short text naming the reader used.
    """
    import numpy as np

    root = Path(root)
    try:
        from cnnx.datasets import load_mnist  # the library's loader, where it exists
        from cnnx.errors import DatasetError
    except ImportError:
        load_mnist = None
    if load_mnist is not None:
        try:
            X, y = load_mnist(split="test", root=root, download=False)
        except DatasetError as exc:
            raise SystemExit(f"error: {exc}\n(pass --data-root DIR, or --synthetic)") from None
        source = f"cnnx.datasets.load_mnist(split='test', root={str(root)!r})"
    else:
        images = _read_idx(root / MNIST_IMAGES, 0x00000803, 3)
        labels = _read_idx(root / MNIST_LABELS, 0x00000801, 1)
        if images.shape[0] != labels.shape[0]:
            raise SystemExit(
                f"error: {root}: {images.shape[0]} images but {labels.shape[0]} labels"
            )
        X = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
        y = labels.astype(np.int64)
        source = f"bench/_common.py IDX reader, {root / MNIST_IMAGES}"
    if samples > X.shape[0]:
        raise SystemExit(f"error: --samples {samples} exceeds the {X.shape[0]} images available")
    return np.ascontiguousarray(X[:samples]), np.ascontiguousarray(y[:samples]), source


def synthetic_mnist(samples: int, seed: int) -> tuple[Any, Any, str]:
    """Random data of MNIST's shape: X ``(samples, 1, 28, 28)`` float32, y ``(samples,)`` int64."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.random((samples, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=samples, dtype=np.int64)
    return X, y, f"synthetic uniform random, seed {seed}"


# --------------------------------------------------------------------------- training loops


StepFn = Callable[[Any, Any], Any]


def time_minibatch_epochs(
    step: StepFn,
    sync: Callable[[], None],
    X: Any,
    y: Any,
    batch_size: int,
    epochs: int,
    seed: int,
) -> tuple[list[float], list[float], int]:
    """Run ``epochs`` shuffled minibatch epochs and time each one.

    The permutation is drawn on the host from a seeded NumPy Generator; the last partial
    batch is dropped so every step sees exactly ``batch_size`` samples.

    Args:
        step: ``step(x_batch, y_batch) -> loss`` with host arrays ``(B, 1, 28, 28)`` float32
            and ``(B,)`` int64; does forward, loss, backward and optimizer step.
        sync: blocks until queued device work is done (a no-op on the CPU).

    Returns:
        ``(seconds per epoch, loss of each epoch's last batch, samples per epoch)``.
    """
    import time

    import numpy as np

    rng = np.random.default_rng(seed)
    n = X.shape[0]
    steps = n // batch_size
    if steps == 0:
        raise SystemExit(f"error: batch size {batch_size} is larger than --samples {n}")
    seconds, losses = [], []
    for _ in range(epochs):
        perm = rng.permutation(n)
        loss = None
        t0 = time.perf_counter()
        for s in range(steps):
            idx = perm[s * batch_size : (s + 1) * batch_size]
            loss = step(X[idx], y[idx])
        sync()
        seconds.append(time.perf_counter() - t0)
        losses.append(float(loss))
    return seconds, losses, steps * batch_size


def make_cnnx_trainer(
    model_name: str,
    device: str,
    seed: int,
    lr: float,
    beta1: float,
    beta2: float,
) -> tuple[StepFn, Callable[[], None], Any]:
    """Build a cnnx model + Adam + softmax cross-entropy and return a training step.

    This is the only place the benchmarks touch the cnnx training API; adjust it here if the
    library's API differs.

    Returns:
        ``(step, sync, device)``: ``step(x_host, y_host) -> loss`` (0-d device array, not yet
        synchronised), ``sync()`` waits for the device, and the cnnx device object.
    """
    import cnnx

    dev = cnnx.device(device)
    model = cnnx.models.get(model_name, seed=seed)
    model.to(dev)
    opt = cnnx.optim.Adam(model.named_parameters(), lr=lr, beta1=beta1, beta2=beta2)
    return make_cnnx_step(model, opt, dev), dev.synchronize, dev


def make_cnnx_step(model: Any, opt: Any, dev: Any) -> StepFn:
    """``step(x_host, y_host) -> loss`` for a cnnx model on ``dev`` and its optimizer.

    Forward, softmax cross-entropy, ``opt.zero_grad()``, ``model.backward_params`` and
    ``opt.step()``; the loss is returned as a 0-d device array, not synchronised.
    """
    import cnnx

    # Labels are checked once when a data set is loaded, so the per-step range check is
    # off, as in cnnx.fit.
    loss_fn = cnnx.nn.SoftmaxCrossEntropy(check_targets=False)
    # backward_params skips the gradient of the input images, which nothing needs; torch
    # skips it too because the input does not require grad.
    backward = model.backward_params
    model.train()

    def step(x_host: Any, y_host: Any) -> Any:
        xb = dev.asarray(x_host)
        yb = dev.asarray(y_host)
        logits = model(xb)
        loss = loss_fn(logits, yb)
        opt.zero_grad()
        backward(loss_fn.backward())
        opt.step()
        return loss

    return step


def cnnx_missing() -> str | None:
    """Why the cnnx training API cannot be used, or None when it can."""
    import importlib

    for module in ("cnnx", "cnnx.nn", "cnnx.optim", "cnnx.models"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"cnnx core not available ({module}: {exc})"
    import cnnx

    if not hasattr(cnnx, "device"):
        return "cnnx core not available (no cnnx.device)"
    return None


def torch_missing() -> str | None:
    """Why torch cannot be used, or None (checked without importing it)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "torch not installed"
    return None


# --------------------------------------------------------------------------- worker processes


def emit_result(result: dict[str, Any]) -> None:
    """Print a worker's result as the one line the parent looks for."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def wait_for_idle(max_wait_s: float, threshold_cores: float = 0.1, window_s: float = 2.0) -> str:
    """Block until other processes use under ``threshold_cores`` cores over ``window_s``.

    For shared machines: call it between measurements (this process is asleep meanwhile,
    so all the busy time it sees belongs to others). Gives up after ``max_wait_s``.

    Returns:
        A short description of what happened, for the progress log.
    """
    import time

    deadline = time.monotonic() + max_wait_s
    waited = 0.0
    while True:
        before = _machine_busy_seconds()
        time.sleep(window_s)
        after = _machine_busy_seconds()
        if before is None or after is None:
            return "cannot read /proc/stat; not waiting"
        if (after - before) / window_s < threshold_cores:
            return f"idle after {waited:.0f} s"
        waited += window_s
        if time.monotonic() >= deadline:
            return f"still busy after {waited:.0f} s; measuring anyway"


def run_worker(
    script: str,
    args: Sequence[str],
    label: str,
    identity: dict[str, Any],
    wait_idle_s: float = 0.0,
) -> dict[str, Any]:
    """Run ``python script args...`` in a fresh process and return its result dict.

    Each implementation runs in its own process so that peak RSS, thread pools and imported
    libraries of one do not leak into the numbers of another. With ``wait_idle_s`` > 0 it
    first waits (at most that long) for the machine to be otherwise idle. A failing worker
    becomes a result with ``status="error"``, the last line of its stderr and the keys of
    ``identity`` (for example ``{"impl": "cnnx", "batch": 64}``).
    """
    cmd = [sys.executable, script, *args]
    note = f" ({wait_for_idle(wait_idle_s)})" if wait_idle_s > 0 else ""
    print(f"  running {label}{note} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
    sys.stderr.write(proc.stderr)
    return {**identity, "status": "error", "reason": f"worker exited {proc.returncode}: {tail}"}


def round_order(impls: Sequence[str], round_index: int) -> list[str]:
    """Implementations in the order to run them in a round: reversed every other round, so
    that neither always runs first (or right after the other) on a drifting machine."""
    return list(impls) if round_index % 2 == 0 else list(reversed(impls))


def add_common_options(p: Any) -> None:
    """The --rounds and --wait-idle options both scripts share."""
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every row this many times, alternating the order of the "
        "implementations; timings are pooled, ratios taken per round "
        "(default: 1)",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each worker, wait up to SECONDS for other processes to use "
        "under 0.1 cores (for shared machines; default: 0, no waiting)",
    )


# --------------------------------------------------------------------------- printing


def write_json_atomically(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` via a temporary file, fsync and os.replace."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table with columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def print_notes(results: Sequence[dict[str, Any]], label: Callable[[dict[str, Any]], str]) -> None:
    """List why each result that is not "ok" has no numbers."""
    notes = [f"- {label(r)}: {r['status']}: {r['reason']}" for r in results if r["status"] != "ok"]
    if notes:
        print("\nnotes:")
        print("\n".join(notes))


NOISY_OTHER_LOAD_CORES = 0.1


def print_load_warnings(
    results: Sequence[dict[str, Any]], label: Callable[[dict[str, Any]], str]
) -> None:
    """Warn about rows measured while other processes used more than a tenth of a core."""
    for r in results:
        cores = r.get("other_processes_cores")
        if cores is not None and cores > NOISY_OTHER_LOAD_CORES:
            print(
                f"WARNING: other processes kept {cores:.2f} cores busy during {label(r)}; "
                "its numbers are not a clean measurement, re-run on an idle machine"
            )


def print_machine_report(lines: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)} : {value}")
