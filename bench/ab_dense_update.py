"""Two CPU choices of issue 10's seventh session, each against what it replaced, alternated.

**Dense layers.** A ``Linear`` layer's three products on a flattened batch-last input,
as cnnx takes them (forward ``(W·xᵀ)ᵀ``, weight gradient by
``primitives.matmul_tn_add``, input gradient ``(Wᵀ·gyᵀ)ᵀ``), against the earlier
formulation (forward ``x·Wᵀ``, weight gradient ``gyᵀ·x`` then ``+=`` on one thread).

**Optimizer updates.** ``zero_grad`` + ``step`` on a zoo network's parameters with the
update rule run on pieces of ``primitives.UPDATE_PIECE_ELEMENTS``, against the earlier
split into one part per thread that the memory traffic pays for.

Every repetition runs both versions back to back in alternating order, each after
writing 8 MiB of other memory (a training step's other layers evict the caches too);
the tables give the median of the per-round medians, and the ratio new/old with its
per-round range (below 1: the new version is faster).

    python bench/ab_dense_update.py --threads 2 --rounds 5
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import _common
import zoo_models

DENSE_SHAPES = [(9216, 128), (4096, 128), (400, 120), (400, 10)]


def alternate(old: Callable[[], Any], new: Callable[[], Any], rounds: int, reps: int) -> str:
    """Table cells: old ms, new ms, new/old (range), medians of per-round medians."""
    import numpy as np

    flush = np.ones(8 << 20, np.uint8)
    per_round: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(rounds):
        times: dict[int, list[float]] = {0: [], 1: []}
        for k in range(reps):
            for i in (0, 1) if k % 2 == 0 else (1, 0):
                flush += 1
                t0 = time.perf_counter()
                (old, new)[i]()
                times[i].append(time.perf_counter() - t0)
        for i in (0, 1):
            per_round[i].append(_common.median(times[i]) * 1e3)
    ratios = [b / a for a, b in zip(per_round[0], per_round[1], strict=True)]
    return (
        f"{_common.median(per_round[0]):.2f} | {_common.median(per_round[1]):.2f} | "
        f"{_common.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})"
    )


def dense_rows(batch_sizes: list[int], rounds: int, reps: int) -> None:
    import numpy as np

    from cnnx.backends import primitives as P

    rng = np.random.default_rng(0)
    print("\nLinear forward + weight gradient + input gradient, ms per call:\n")
    print("| dense layer | batch | x·Wᵀ, gW then += | (W·xᵀ)ᵀ, matmul_tn_add | new / old |")
    print("|---|---|---|---|---|")
    for features, outputs in DENSE_SHAPES:
        for batch in batch_sizes:
            w = rng.standard_normal((outputs, features), dtype=np.float32)
            grad = np.zeros_like(w)
            x = rng.standard_normal((features, batch), dtype=np.float32).T  # batch-last
            gy = rng.standard_normal((batch, outputs), dtype=np.float32)

            def old(w=w, grad=grad, x=x, gy=gy) -> None:
                P.matmul(x, w.T)
                grad.__iadd__(P.matmul(gy.T, x))
                P.matmul(w.T, gy.T)

            def new(w=w, grad=grad, x=x, gy=gy) -> None:
                P.matmul(w, x.T)
                P.matmul_tn_add(gy, x, grad)
                P.matmul(w.T, gy.T)

            cells = alternate(old, new, rounds, reps)
            print(f"| {features}→{outputs} | {batch} | {cells} |", flush=True)


def update_rows(nets: list[str], rounds: int, reps: int) -> None:
    import numpy as np

    import cnnx
    from cnnx.backends import primitives as P
    from cnnx.backends.threads import threads_for

    piece = P.UPDATE_PIECE_ELEMENTS
    print(f"\nzero_grad + step, ms per call (pieces of {piece:,} elements):\n")
    print("| network | parameters | optimizer | one part per thread | pieces | new / old |")
    print("|---|---|---|---|---|---|")
    for net in nets:
        for name in ("SGD", "Momentum", "Adam"):
            model = zoo_models.build_cnnx(net, 0)
            opt = getattr(cnnx.optim, name)(model.named_parameters(), lr=1e-3)
            size = sum(p.size for p in model.parameters())
            rng = np.random.default_rng(0)
            for p in model.parameters():
                p.grad[...] = rng.standard_normal(p.shape, dtype=np.float32) * 1e-3
            opt.step()  # creates the state
            # The earlier split: threads_for(traffic) parts of equal size, 16-aligned.
            parts = threads_for(size * 4 * (2 + 2 * len(opt.state_keys)))
            part = -(-size // parts)
            part += -part % 16
            old_piece = part if parts > 1 else 1 << 40

            def run(piece_elements: int, opt=opt) -> None:
                P.UPDATE_PIECE_ELEMENTS = piece_elements
                opt.zero_grad()
                opt.step()

            cells = alternate(lambda o=old_piece: run(o), lambda: run(piece), rounds, reps)
            P.UPDATE_PIECE_ELEMENTS = piece
            print(f"| {net} | {size:,} | {name} | {cells} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=_common.available_cores())
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256])
    p.add_argument("--nets", nargs="+", default=["torch_mnist", "cifar_cnn", "lenet5"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=30, help="alternations per round")
    args = p.parse_args(argv)
    _common.set_thread_env(args.threads)
    _common.print_machine_report(_common.machine_report(args.threads))
    dense_rows(args.batch_sizes, args.rounds, args.reps)
    update_rows(args.nets, args.rounds, args.reps)


if __name__ == "__main__":
    main()
