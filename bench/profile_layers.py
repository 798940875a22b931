"""Where a cnnx training step spends its time, per layer and per primitive (CPU).

Wraps every layer's ``forward``/``backward`` and the named primitives (im2col, col2im,
pooling, elementwise kernels) with wall-clock timers, runs training steps of a zoo network
(``bench/zoo_models.py``) on synthetic data, and prints milliseconds and page faults per
step (minor faults, ``ru_minflt``: memory the kernel had to map and zero-fill; each
step's batch is drawn from 1,024 samples, as in ``bench_zoo.py``'s workers). Primitive
times are contained in the layer times; a convolution's time minus its im2col/col2im is its
matrix products, bias and bookkeeping ("GEMM + rest"). With ``--torch`` it also prints
PyTorch's own profile (``torch.profiler``, self CPU time per operator) of the same network.

    python bench/profile_layers.py --net torch_mnist --batch 64 --optimizer sgd
    python bench/profile_layers.py --net cifar_cnn --batch 256 --torch

Timers add a few microseconds per call; read the numbers as a breakdown, and take speeds
from ``bench_zoo.py``. ``--clock cpu`` times with the process's CPU time instead of the wall
clock: with one thread it is the steadier measure on a loaded machine.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import defaultdict
from typing import Any

import _common
import zoo_models

#: (module path, attribute, category) of primitives to time where they exist.
PRIMITIVES = [
    ("cnnx.nn.functional", "im2col", "im2col"),
    ("cnnx.nn.functional", "col2im", "col2im"),
    ("cnnx.nn.pooling", "first_max", "pool fwd"),  # before cnnx.backends.primitives
    ("cnnx.nn.pooling", "route", "pool bwd"),
    ("cnnx.backends.primitives", "im2col_matmul", "conv fwd: im2col + GEMM (+ bias)"),
    ("cnnx.backends.primitives", "matmul_im2col_t", "conv gW: im2col + GEMM"),
    ("cnnx.backends.primitives", "col2im_matmul", "conv gx: GEMM + col2im"),
    ("cnnx.backends.primitives", "maxpool_forward", "pool fwd"),
    ("cnnx.backends.primitives", "maxpool_backward", "pool bwd"),
    ("cnnx.backends.primitives", "relu_forward", "relu fwd"),
    ("cnnx.backends.primitives", "relu_backward", "relu bwd"),
]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
#: Samples each step's batch is drawn from, as in bench_zoo.py's workers.
POOL_SAMPLES = 1024


def minor_faults() -> int:
    """Page faults this process has taken that needed no disk (fresh or reclaimed pages)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Timers:
    """Time and page faults spent inside wrapped functions, summed by key."""

    def __init__(self, clock: Any) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.faults: dict[str, int] = defaultdict(int)
        self.clock = clock
        self.active: set[str] = set()

    def clear(self) -> None:
        self.total.clear()
        self.faults.clear()

    def wrap(self, fn: Any, key: str, group: str | None = None) -> Any:
        """``fn`` timed under ``key``; a call made inside a timed call of the same
        ``group`` (``Linear.backward`` calls its own ``backward_params``) is not timed
        again, since the outer call's time contains it."""
        clock = self.clock

        def timed(*args: Any, **kwargs: Any) -> Any:
            if group is not None and group in self.active:
                return fn(*args, **kwargs)
            if group is not None:
                self.active.add(group)
            f0, t0 = minor_faults(), clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[key] += clock() - t0
                self.faults[key] += minor_faults() - f0
                self.active.discard(group)

        return timed


def profile_cnnx(args: argparse.Namespace) -> None:
    import importlib

    import numpy as np

    import cnnx

    model = zoo_models.build_cnnx(args.net, args.seed)
    if args.optimizer == "sgd":
        opt = cnnx.optim.SGD(model.named_parameters(), lr=0.01)
    else:
        opt = cnnx.optim.Adam(model.named_parameters(), lr=1e-3)
    loss_fn = cnnx.nn.SoftmaxCrossEntropy(check_targets=False)
    clock = CLOCKS[args.clock]
    timers = Timers(clock)
    names = []
    for i, layer in enumerate(model):
        name = f"{i} {type(layer).__name__}"
        names.append(name)
        for method in ("forward", "backward", "backward_params"):
            bound = getattr(layer, method)
            object.__setattr__(layer, method, timers.wrap(bound, f"{name}|{method}", name))
    seen = set()
    for path, attr, category in PRIMITIVES:
        try:
            mod = importlib.import_module(path)
        except ImportError:
            continue
        fn = getattr(mod, attr, None)
        if fn is None or (path, attr) in seen:
            continue
        seen.add((path, attr))
        setattr(mod, attr, timers.wrap(fn, f"prim|{category}"))
    rng = np.random.default_rng(args.seed)
    # A new batch each step, indexed out of a pool of samples as bench_zoo.py does: the
    # allocations, and so the page faults, are those of a benchmark worker.
    pool = max(POOL_SAMPLES, args.batch)
    X = rng.random((pool, *zoo_models.NETWORKS[args.net][1]), dtype=np.float32)
    Y = rng.integers(0, 10, size=pool, dtype=np.int64)

    def step() -> None:
        idx = rng.permutation(pool)[: args.batch]
        x, y = X[idx], Y[idx]
        logits = model(x)
        t0 = clock()
        loss_fn(logits, y)
        g = loss_fn.backward()
        timers.total["loss"] += clock() - t0
        t0 = clock()
        opt.zero_grad()
        timers.total["optimizer"] += clock() - t0
        model.backward_params(g)
        t0 = clock()
        opt.step()
        timers.total["optimizer"] += clock() - t0

    for _ in range(args.warmup):
        step()
    timers.clear()
    f0, t0 = minor_faults(), clock()
    for _ in range(args.steps):
        step()
    wall = (clock() - t0) / args.steps * 1e3
    step_faults = (minor_faults() - f0) / args.steps
    per = {k: v / args.steps * 1e3 for k, v in timers.total.items()}
    faults = {k: v / args.steps for k, v in timers.faults.items()}
    rows = []
    for name in names:
        keys = [f"{name}|{m}" for m in ("forward", "backward", "backward_params")]
        fwd = per.get(keys[0], 0.0)
        bwd = per.get(keys[1], 0.0) + per.get(keys[2], 0.0)
        layer_faults = sum(faults.get(k, 0.0) for k in keys)
        rows.append([name, f"{fwd:.2f}", f"{bwd:.2f}", f"{fwd + bwd:.2f}", f"{layer_faults:.0f}"])
    rows.append(["loss (forward + backward)", "", "", f"{per.get('loss', 0):.2f}", ""])
    rows.append(["optimizer (zero_grad + step)", "", "", f"{per.get('optimizer', 0):.2f}", ""])
    rows.append(["**whole step**", "", "", f"**{wall:.2f}**", f"**{step_faults:.0f}**"])
    print(f"## cnnx {args.net}, batch {args.batch}, {args.optimizer}, {args.threads} threads, "
          f"{args.clock} ms and page faults per step (mean of {args.steps})\n")  # fmt: skip
    print(_common.format_table(["layer", "forward", "backward", "total", "page faults"], rows))
    prim = sorted((k.split("|", 1)[1], v) for k, v in per.items() if k.startswith("prim|"))
    if prim:
        print("\nprimitives (inside the layer times above), ms per step:\n")
        print(_common.format_table(["primitive", "ms"], [[k, f"{v:.2f}"] for k, v in prim]))


def profile_torch(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from torch import nn
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(args.threads)
    model = zoo_models.build_torch(args.net, args.seed)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    x = torch.from_numpy(rng.random((args.batch, *zoo_models.NETWORKS[args.net][1]),
                                    dtype=np.float32))  # fmt: skip
    y = torch.from_numpy(rng.integers(0, 10, size=args.batch, dtype=np.int64))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    clock = CLOCKS[args.clock]
    t0 = clock()
    for _ in range(args.steps):
        step()
    wall = (clock() - t0) / args.steps * 1e3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    threads = torch.get_num_threads()
    print(
        f"\n## torch {args.net}, batch {args.batch}, {args.optimizer}, {threads} threads: "
        f"{wall:.2f} {args.clock} ms per step (unprofiled)\n"
    )
    rows = []
    for ev in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:18]:
        rows.append([ev.key, f"{ev.self_cpu_time_total / 1e3 / args.steps:.2f}",
                     f"{ev.count / args.steps:g}"])  # fmt: skip
    print(_common.format_table(["operator", "self ms per step", "calls per step"], rows))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--net", default="torch_mnist", choices=list(zoo_models.NETWORKS))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--steps", type=int, default=20, help="profiled steps (default: 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    p.add_argument("--threads", type=int, default=_common.available_cores())
    p.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time, all threads "
        "(steadier on a loaded machine, but counts spinning threads)",
    )
    p.add_argument("--torch", action="store_true", help="also profile the PyTorch version")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    _common.set_thread_env(args.threads)
    print(f"BLAS: {_common.blas_kernel()}; load average {_common.load_average()}")
    print(f"command: {_common.command_line()}\n")
    profile_cnnx(args)
    if args.torch:
        profile_torch(args)


if __name__ == "__main__":
    sys.exit(main())
