"""Issue 10, ninth session: cnnx's helper threads against the thread pool they replaced.

``cnnx.backends.threads.parallel_for`` hands a region's items to helper threads. Since
the ninth session each helper waits on a queue of its own and the caller waits on one
lock (``threads._share``); before, each region submitted a task per helper to a
``concurrent.futures.ThreadPoolExecutor`` and waited on an event. This script keeps that
earlier ``_share`` (below, unchanged but for names) and alternates whole training steps
of zoo networks between the two in one process: step by step, in alternating order, so
that the machine's drift falls on both. Both run the same items on the same threads
count, so the results are the same bits; only the hand-over differs.

Prints, per network, batch size and optimizer, the median step time of each and the
ratio new/old: the median over rounds of per-round medians, with the per-round range
(below 1: the new helpers are faster).

    python bench/ab_parallel_regions.py --threads 2 --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _common
import zoo_models

POOL_SAMPLES = 1024  # each step's batch is drawn from these, as in bench_zoo.py


def executor_share() -> Callable[..., None]:
    """The ``_share`` of cnnx before the ninth session, with a pool of its own."""
    from cnnx.backends import threads

    pool = ThreadPoolExecutor(threads.num_threads(), thread_name_prefix="old-cnnx-cpu")

    def share(
        work: Callable[[int], None],
        count: int,
        helpers: int,
        buffer: Callable[[], contextlib.AbstractContextManager[Any]],
    ) -> None:
        items = itertools.count()
        unfinished = [count]
        lock = threading.Lock()
        finished = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            with buffer():
                while True:
                    k = next(items)
                    if k >= count:
                        return
                    try:
                        work(k)
                    except BaseException as exc:
                        errors.append(exc)
                    with lock:
                        unfinished[0] -= 1
                        if unfinished[0] == 0:
                            finished.set()

        for _ in range(helpers):
            pool.submit(run)
        run()
        finished.wait()
        if errors:
            raise errors[0]

    return share


def training_step(net: str, batch: int, optimizer: str) -> Callable[[], None]:
    import numpy as np

    import cnnx

    model = zoo_models.build_cnnx(net, 0)
    if optimizer == "sgd":
        opt = cnnx.optim.SGD(model.named_parameters(), lr=0.01)
    else:
        opt = cnnx.optim.Adam(model.named_parameters(), lr=1e-3)
    loss_fn = cnnx.nn.SoftmaxCrossEntropy(check_targets=False)
    rng = np.random.default_rng(0)
    X = rng.random((POOL_SAMPLES, *zoo_models.NETWORKS[net][1]), dtype=np.float32)
    Y = rng.integers(0, 10, size=POOL_SAMPLES, dtype=np.int64)

    def step() -> None:
        idx = rng.permutation(POOL_SAMPLES)[:batch]
        loss_fn(model(X[idx]), Y[idx])
        g = loss_fn.backward()
        opt.zero_grad()
        model.backward_params(g)
        opt.step()

    return step


def compare(
    step: Callable[[], None], old_share: Callable[..., None], rounds: int, steps: int
) -> str:
    """Table cells: old ms, new ms, new/old (range), medians of per-round medians."""
    from cnnx.backends import threads

    shares = (old_share, threads._share)
    per_round: dict[int, list[float]] = {0: [], 1: []}
    try:
        for i in (0, 1):  # warm-up: buffers, recycled blocks and both sets of threads
            threads._share = shares[i]
            for _ in range(3):
                step()
        for _ in range(rounds):
            times: dict[int, list[float]] = {0: [], 1: []}
            for k in range(steps):
                for i in (0, 1) if k % 2 == 0 else (1, 0):
                    threads._share = shares[i]
                    t0 = time.perf_counter()
                    step()
                    times[i].append(time.perf_counter() - t0)
            for i in (0, 1):
                per_round[i].append(_common.median(times[i]) * 1e3)
    finally:
        threads._share = shares[1]
    ratios = [b / a for a, b in zip(per_round[0], per_round[1], strict=True)]
    return (
        f"{_common.median(per_round[0]):.2f} | {_common.median(per_round[1]):.2f} | "
        f"{_common.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=_common.available_cores())
    p.add_argument("--nets", nargs="+", default=list(zoo_models.NETWORKS))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256])
    p.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="steps of each per round")
    args = p.parse_args(argv)
    _common.set_thread_env(args.threads)
    _common.print_machine_report(_common.machine_report(args.threads))
    print("\nms per training step: executor (old) | helpers (new) | new / old (range)\n")
    print("| network | batch | optimizer | old | new | new / old |")
    print("|---|---|---|---|---|---|")
    old_share = executor_share()  # one pool for the whole run, as cnnx had one
    for net in args.nets:
        for batch in args.batch_sizes:
            for optimizer in args.optimizers:
                step = training_step(net, batch, optimizer)
                cells = compare(step, old_share, args.rounds, args.steps)
                print(f"| {net} | {batch} | {optimizer} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
