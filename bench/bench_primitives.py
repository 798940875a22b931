"""Time of each CPU primitive on the zoo's layer shapes, under several configurations.

For every layer of the chosen zoo networks (``zoo_models``) this times the primitives
that a training step calls for it: a convolution's forward (``im2col_matmul``), weight
gradient (``matmul_im2col_t``) and input gradient (``col2im_matmul``, not for a first
layer, whose input gradient training skips), max pooling forward and backward, ReLU
forward and backward (in place, as the zoo's networks run it) and a dense layer's
parameter and input gradients. Inputs are random float32 arrays of the shapes and layouts
the layer sees in training: an ``(N, C, H, W)`` batch for the first convolution,
batch-last activations for the layers below.

A configuration is ``THREADS[:NAME=INT...]``, as in ``ab_constants.py``: cnnx's thread
count and module constants of ``cnnx.backends.threads`` / ``cnnx.backends.primitives``.
Every repetition runs all configurations back to back in alternating order; the table
gives the fastest repetition (ms per call, the steadiest figure on a shared machine)
and, in brackets, the ratio to the first configuration. To compare two versions of the
code instead, run the same command with ``PYTHONPATH`` set to each checkout.

    python bench/bench_primitives.py --nets lenet5 cifar_cnn --batch-sizes 64 \\
        --configs 1:UFUNC_BUFFER_ELEMENTS=8192 1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import _common
import zoo_models
from ab_constants import start_configs


def layer_cases(net: str, batch: int, rng: Any) -> list[tuple[str, str, Callable[[], Any]]]:
    """``(layer, pass, call)`` for every primitive a training step runs on ``net``."""
    import numpy as np

    from cnnx.backends import primitives as P

    def batch_last(c: int, h: int, w: int) -> Any:
        return rng.standard_normal((c, h, w, batch), dtype=np.float32).transpose(3, 0, 1, 2)

    _, (c, h, w), spec, _ = zoo_models.NETWORKS[net]
    features = None
    cases: list[tuple[str, str, Callable[[], Any]]] = []
    first_conv = True
    for index, layer in enumerate(spec):
        kind = layer[0]
        if kind == "conv":
            _, cin, cout, k, pad = layer
            # The first layer gets the data batch as it comes, (N, C, H, W) in C order; the
            # layers below get batch-last activations.
            if first_conv:
                x = rng.standard_normal((batch, cin, h, w), dtype=np.float32)
            else:
                x = batch_last(cin, h, w)
            geometry = ((k, k), (1, 1), (pad, pad))
            oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
            wmat = rng.standard_normal((cout, cin * k * k), dtype=np.float32)
            bias = rng.standard_normal(cout, dtype=np.float32)
            gy = rng.standard_normal((cout, oh * ow * batch), dtype=np.float32)
            name = f"{index} conv {cin}→{cout} {k}×{k}"
            cases.append(
                (
                    name,
                    "forward",
                    lambda x=x, g=geometry, m=wmat, b=bias: P.im2col_matmul(m, x, *g, bias=b),
                )
            )
            cases.append(
                (name, "weight grad", lambda x=x, g=geometry, gy=gy: P.matmul_im2col_t(gy, x, *g))
            )
            if not first_conv:
                cases.append(
                    (
                        name,
                        "input grad",
                        lambda x=x, g=geometry, m=wmat, gy=gy: P.col2im_matmul(
                            m.T, gy, x.shape, *g
                        ),
                    )
                )
            first_conv = False
            c, h, w = cout, oh, ow
        elif kind == "pool":
            k = layer[1]
            x = batch_last(c, h, w)
            y, saved = P.maxpool_forward(x, (k, k), (k, k))
            gy = rng.standard_normal(y.shape, dtype=np.float32).transpose(3, 0, 1, 2)
            name = f"{index} max pool {k}"
            cases.append((name, "forward", lambda x=x, k=k: P.maxpool_forward(x, (k, k), (k, k))))
            cases.append(
                (
                    name,
                    "backward",
                    lambda x=x, k=k, gy=gy, s=saved: P.maxpool_backward(
                        gy, s, x.shape, (k, k), (k, k)
                    ),
                )
            )
            h, w = h // k, w // k
        elif kind == "relu":
            if features is not None:
                continue  # a dense head's ReLU: microseconds
            x = batch_last(c, h, w)
            y = P.relu_forward(x)
            gy = batch_last(c, h, w)
            name = f"{index} relu"
            cases.append((name, "forward", lambda x=x: P.relu_forward(x, inplace=True)))
            cases.append((name, "backward", lambda g=gy, y=y: P.relu_backward(g, y, inplace=True)))
        elif kind == "flatten":
            features = c * h * w
        elif kind == "linear":
            _, fin, fout = layer
            if features == fin and fin == c * h * w:  # the flattened batch-last activation
                x = batch_last(c, h, w).reshape(batch, -1)
            else:
                x = rng.standard_normal((batch, fin), dtype=np.float32)
            wmat = rng.standard_normal((fout, fin), dtype=np.float32)
            gy = rng.standard_normal((batch, fout), dtype=np.float32)
            grad = np.zeros_like(wmat)
            name = f"{index} dense {fin}→{fout}"
            # As Linear.forward and Linear.backward_params call them.
            cases.append((name, "forward", lambda x=x, m=wmat: P.matmul(m, x.T).T))
            cases.append(
                (name, "weight grad", lambda x=x, gy=gy, g=grad: P.matmul_tn_add(gy, x, g))
            )
            cases.append((name, "input grad", lambda gy=gy, m=wmat: P.matmul(m.T, gy.T).T))
            features = fout
    return cases


def time_configs(
    call: Callable[[], Any], apply: list[Callable[[], None]], reps: int, target_s: float
) -> list[list[float]]:
    """ms per call of ``call`` under each configuration, one list of ``reps`` per config."""
    counts = []
    for setup in apply:
        setup()
        call()
        t0 = time.perf_counter()
        call()
        counts.append(max(2, int(target_s / max(time.perf_counter() - t0, 1e-7))))
    times: list[list[float]] = [[] for _ in apply]
    order = list(range(len(apply)))
    for rep in range(reps):
        for i in order if rep % 2 == 0 else order[::-1]:
            apply[i]()
            t0 = time.perf_counter()
            for _ in range(counts[i]):
                call()
            times[i].append((time.perf_counter() - t0) / counts[i] * 1e3)
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", nargs="+", default=list(zoo_models.NETWORKS))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64])
    p.add_argument("--configs", nargs="+", default=["1", "2"])
    p.add_argument("--reps", type=int, default=9, help="alternating repetitions")
    p.add_argument("--target-seconds", type=float, default=0.03,
                   help="time of one repetition of one configuration (default 0.03)")  # fmt: skip
    args = p.parse_args(argv)
    configs, apply = start_configs(args.configs)

    import numpy as np

    rows = []
    for net in args.nets:
        for batch in args.batch_sizes:
            rng = np.random.default_rng(0)
            for layer, part, call in layer_cases(net, batch, rng):
                times = time_configs(call, apply, args.reps, args.target_seconds)
                base = min(times[0])
                row: list[Any] = [net, batch, layer, part]
                for t in times:
                    row.append(f"{min(t):.3f} ({min(t) / base:.2f})")
                rows.append(row)
            print(f"  done: {net} batch {batch}", file=sys.stderr, flush=True)
    apply[0]()
    print(f"\nms per call, fastest of {args.reps} alternating repetitions "
          f"(ratio to {configs[0][0]!r}):\n")  # fmt: skip
    headers = ["network", "batch", "layer", "pass", *[text for text, _, _ in configs]]
    print(_common.format_table(headers, rows))
    print(f"\nload average at end: {_common.load_average()}")


if __name__ == "__main__":
    main()
