"""cnnx training-step time under different CPU strategy constants, alternated in one process.

Each configuration sets cnnx's thread count and, optionally, module constants of
``cnnx.backends.threads`` or ``cnnx.backends.primitives`` (e.g. ``PARALLEL_MIN_BYTES``);
every round runs all configurations on the same model and batch, in alternating order,
and the table reports the median ms per step with the per-round range. The constants
change how the work is split and scheduled, not what is computed (see
``tests/test_primitives.py``). PyTorch is not involved: this compares cnnx with itself.

    python bench/ab_constants.py --nets lenet5 mnist_cnn --batch-sizes 64 256 \\
        --configs 2 2:PARALLEL_MIN_BYTES=1 --rounds 5

A configuration is ``THREADS[:NAME=INT[:NAME=INT...]]``; every constant not named has its
default value.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import _common
import zoo_models


def parse_config(text: str) -> tuple[int, dict[str, int]]:
    threads, *settings = text.split(":")
    if not threads.isdigit() or int(threads) < 1:
        raise SystemExit(f"--configs: {text!r} must start with a positive thread count")
    values = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise SystemExit(f"--configs: {setting!r} in {text!r} must be NAME=INT")
        values[name] = int(value)
    return int(threads), values


def config_appliers(configs: list[tuple[int, dict[str, int]]]) -> list[Callable[[], None]]:
    """One function per ``(threads, constants)`` configuration that switches cnnx to it.

    Constants not named get their default values back; an unknown name is an error.
    Import only after :func:`_common.set_thread_env`.
    """
    from cnnx.backends import primitives, threads

    modules = (threads, primitives)
    defaults = {
        (module, name): getattr(module, name)
        for module in modules
        for name in dir(module)
        if name.isupper() and isinstance(getattr(module, name), int)
    }
    for _, values in configs:
        for name in values:
            if not any(key[1] == name for key in defaults):
                raise SystemExit(f"--configs: no integer constant {name} in {modules}")

    def applier(thread_count: int, values: dict[str, int]) -> Callable[[], None]:
        def apply() -> None:
            for (module, name), default in defaults.items():
                setattr(module, name, values.get(name, default))
            primitives._conv_plan.cache_clear()  # plans are cached per shape and constants
            threads.set_num_threads(thread_count)

        return apply

    return [applier(thread_count, values) for thread_count, values in configs]


def start_configs(
    texts: list[str],
) -> tuple[list[tuple[str, int, dict[str, int]]], list[Callable[[], None]]]:
    """Parse ``--configs``, set the thread environment, import cnnx and print the machine.

    Returns ``(text, threads, constants)`` per configuration and their appliers
    (:func:`config_appliers`). The environment is set for the largest thread count
    before NumPy is first imported.
    """
    configs = [(text, *parse_config(text)) for text in texts]
    most_threads = max(threads for _, threads, _ in configs)
    _common.set_thread_env(most_threads)
    appliers = config_appliers([(threads, values) for _, threads, values in configs])
    _common.print_machine_report(_common.machine_report(most_threads))
    return configs, appliers


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", nargs="+", default=list(zoo_models.NETWORKS))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256])
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--configs", nargs="+", default=["2", "2:PARALLEL_MIN_BYTES=1"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--samples", type=int, default=4096, help="samples per timed block")
    args = p.parse_args(argv)
    configs, appliers = start_configs(args.configs)

    import numpy as np

    import cnnx

    rows = []
    for net in args.nets:
        for batch in args.batch_sizes:
            model = zoo_models.build_cnnx(net, 0)
            params = model.named_parameters()
            opt = (
                cnnx.optim.SGD(params, lr=0.01)
                if args.optimizer == "sgd"
                else cnnx.optim.Adam(params, lr=1e-3)
            )
            step = _common.make_cnnx_step(model, opt, cnnx.device("cpu"))
            rng = np.random.default_rng(0)
            x = rng.standard_normal((batch, *zoo_models.NETWORKS[net][1]), dtype=np.float32)
            y = rng.integers(0, 10, batch)
            steps = max(4, args.samples // batch)
            times: dict[str, list[float]] = {text: [] for text, _, _ in configs}
            indices = list(range(len(configs)))
            for k in range(args.rounds):
                for i in indices if k % 2 == 0 else indices[::-1]:
                    text = configs[i][0]
                    appliers[i]()
                    for _ in range(3):
                        step(x, y)
                    t0 = time.perf_counter()
                    for _ in range(steps):
                        step(x, y)
                    times[text].append((time.perf_counter() - t0) / steps * 1e3)
            row: list[Any] = [net, batch]
            for text, _, _ in configs:
                t = times[text]
                row.append(f"{_common.median(t):.2f} ({min(t):.2f}–{max(t):.2f})")
            rows.append(row)
            print(f"  done: {net} batch {batch}", file=sys.stderr, flush=True)
    appliers[0]()
    print(f"\nms per training step ({args.optimizer}), median of {args.rounds} alternating "
          f"rounds (range):\n")  # fmt: skip
    print(_common.format_table(["network", "batch", *[t for t, _, _ in configs]], rows))
    print(f"\nload average at end: {_common.load_average()}")


if __name__ == "__main__":
    main()
