"""Training throughput of a zoo of standard CNNs: cnnx against PyTorch on the CPU.

Networks (``bench/zoo_models.py``): PyTorch's MNIST example (32→64-channel 3×3 convs, dense
128, dropout), cnnx's ``lenet5``, a CIFAR-10-size net (3×32×32, 3×3 convs 32 and 64 with
padding, pooling, dense 128, dropout) and cnnx's ``mnist_cnn``; each with SGD (lr 0.01) and
Adam (lr 1e-3), at every ``--batch-sizes``. A step is forward + softmax cross-entropy +
backward + update on synthetic float32 data (uniform images, random labels).

Run from the repository root::

    python bench/bench_zoo.py --rounds 3                  # everything, all usable cores
    python bench/bench_zoo.py --nets cifar_cnn --optimizers sgd --batch-sizes 64

Every (implementation, network, batch, optimizer) runs in its own worker process; in each
round cnnx and PyTorch run back to back for one configuration, in alternating order, and
the speed ratio is taken within the round. See bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import _common
import zoo_models

SCRIPT = str(Path(__file__).resolve())
OPTIMIZERS = {"sgd": {"lr": 0.01}, "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--nets",
        nargs="+",
        default=list(zoo_models.NETWORKS),
        choices=list(zoo_models.NETWORKS),
        help="networks (default: all)",
    )
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[64, 256],
        metavar="B",
        help="minibatch sizes (default: 64 256)",
    )
    p.add_argument(
        "--optimizers",
        nargs="+",
        default=["sgd", "adam"],
        choices=list(OPTIMIZERS),
        help="optimizers (default: sgd adam)",
    )
    p.add_argument(
        "--block-samples",
        type=int,
        default=1024,
        help="samples per timed block (rounded down to whole batches; default 1024)",
    )
    p.add_argument(
        "--blocks",
        type=int,
        default=3,
        help="timed blocks per worker; the median is reported (default: 3)",
    )
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=3,
        help="untimed steps before the timed blocks (default: 3)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=_common.available_cores(),
        help=f"BLAS/OpenMP/torch threads (default: usable cores, here {_common.available_cores()})",
    )
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    p.add_argument("--no-cnnx", action="store_true", help="skip the cnnx rows")
    p.add_argument("--seed", type=int, default=0, help="init, data and shuffling seed")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON here")
    _common.add_common_options(p)
    p.add_argument("--worker", choices=["cnnx", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("block_samples", "blocks", "threads", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if any(b < 1 or b > args.block_samples for b in args.batch_sizes):
        p.error(f"--batch-sizes must be between 1 and --block-samples {args.block_samples}")
    return args


# --------------------------------------------------------------------------- worker side


def build_step(impl: str, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    net, opt_name = args.nets[0], args.optimizers[0]
    hyper = OPTIMIZERS[opt_name]
    if impl == "cnnx":
        import cnnx

        dev = cnnx.device("cpu")
        model = zoo_models.build_cnnx(net, args.seed)
        if opt_name == "sgd":
            opt = cnnx.optim.SGD(model.named_parameters(), lr=hyper["lr"])
        else:
            b1, b2 = hyper["betas"]
            opt = cnnx.optim.Adam(
                model.named_parameters(), lr=hyper["lr"], beta1=b1, beta2=b2, eps=hyper["eps"]
            )
        return _common.make_cnnx_step(model, opt, dev), {}
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    model = zoo_models.build_torch(net, args.seed)
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=hyper["lr"])
    else:
        opt = torch.optim.Adam(model.parameters(), **hyper)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    def step(x_host: Any, y_host: Any) -> Any:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(torch.from_numpy(x_host)), torch.from_numpy(y_host))
        loss.backward()
        opt.step()
        return loss.detach()

    return step, {"torch_threads": torch.get_num_threads()}


def worker(args: argparse.Namespace) -> None:
    import time

    import numpy as np

    impl, net, batch = args.worker, args.nets[0], args.batch_sizes[0]
    identity = {"impl": impl, "net": net, "batch": batch, "optimizer": args.optimizers[0]}
    missing = _common.cnnx_missing() if impl == "cnnx" else _common.torch_missing()
    if missing is not None:
        _common.emit_result({**identity, "status": "n/a", "reason": missing})
        return
    rng = np.random.default_rng(args.seed)
    steps = args.block_samples // batch
    n = steps * batch
    X = rng.random((n, *zoo_models.NETWORKS[net][1]), dtype=np.float32)
    y = rng.integers(0, zoo_models.NUM_CLASSES, size=n, dtype=np.int64)
    step, extra = build_step(impl, args)
    rss_before = _common.current_rss_mib()
    for _ in range(args.warmup_steps):
        idx = rng.permutation(n)[:batch]
        step(X[idx], y[idx])
    probe_before = _common.speed_probe_ms()
    load = _common.OtherLoadProbe()
    seconds, loss = [], None
    for _ in range(args.blocks):
        perm = rng.permutation(n)
        t0 = time.perf_counter()
        for s in range(steps):
            idx = perm[s * batch : (s + 1) * batch]
            loss = step(X[idx], y[idx])
        seconds.append(time.perf_counter() - t0)
    other_cores = load.cores()
    _common.emit_result(
        {
            **identity,
            "status": "ok",
            "samples_per_block": n,
            "block_seconds": seconds,
            "samples_per_s": [n / s for s in seconds],
            "last_loss": float(loss),
            "rss_before_training_mib": rss_before,
            "peak_rss_mib": _common.peak_rss_mib(),
            "other_processes_cores": other_cores,
            "speed_probe_ms": [probe_before, _common.speed_probe_ms()],
            "blas": _common.blas_kernel(),
            **extra,
        }
    )


# --------------------------------------------------------------------------- parent side


def worker_args(args: argparse.Namespace, impl: str, net: str, batch: int, opt: str) -> list[str]:
    return [
        "--worker", impl, "--nets", net, "--batch-sizes", str(batch), "--optimizers", opt,
        "--block-samples", str(args.block_samples), "--blocks", str(args.blocks),
        "--warmup-steps", str(args.warmup_steps), "--threads", str(args.threads),
        "--seed", str(args.seed),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _common.set_thread_env(args.threads)  # before NumPy or torch is imported
    if args.worker:
        worker(args)
        return
    machine = _common.machine_report(args.threads)
    print("# CNN zoo training throughput (bench/bench_zoo.py)\n")
    _common.print_machine_report(machine)
    print(
        f"{'timing':<21} : per worker {args.warmup_steps} warm-up steps, then {args.blocks} "
        f"timed blocks of {args.block_samples} samples (whole batches); synthetic data"
    )
    print(f"{'memory':<21} : peak RSS of the row's own worker process (ru_maxrss)\n")
    for net in args.nets:
        print(f"- {net}: {zoo_models.NETWORKS[net][0]}")
    print(flush=True)

    impls = [i for i, skip in (("cnnx", args.no_cnnx), ("torch", args.no_torch)) if not skip]
    configs = [(n, b, o) for n in args.nets for b in args.batch_sizes for o in args.optimizers]
    runs: dict[tuple[str, str, int, str], list[dict[str, Any]]] = {
        (i, *c): [] for c in configs for i in impls
    }
    for k in range(args.rounds):
        for c, (net, b, opt) in enumerate(configs):
            for impl in _common.round_order(impls, k + c):
                result = _common.run_worker(
                    SCRIPT,
                    worker_args(args, impl, net, b, opt),
                    f"round {k + 1}/{args.rounds}: {impl} {net} batch {b} {opt}",
                    {"impl": impl, "net": net, "batch": b, "optimizer": opt},
                    args.wait_idle,
                )
                runs[(impl, net, b, opt)].append({**result, "round": k + 1})
    flat = [x for group in runs.values() for x in group]

    rows = []
    for (impl, net, b, opt), group in runs.items():
        ok = [x for x in group if x["status"] == "ok"]
        if not ok:
            rows.append([impl, net, b, opt, group[0]["status"], "", "", "", ""])
            continue
        sps = [v for x in ok for v in x["samples_per_s"]]
        loads = [x["other_processes_cores"] or 0.0 for x in ok]
        rows.append([
            impl, net, b, opt, f"{_common.median(sps):,.0f}", f"{min(sps):,.0f}–{max(sps):,.0f}",
            f"{max(x['peak_rss_mib'] for x in ok):.0f}", f"{ok[-1]['last_loss']:.3f}",
            f"{max(loads):.2f}",
        ])  # fmt: skip
    print(_common.format_table(
        ["impl", "network", "batch", "optimizer", "samples/s (median)", "min–max",
         "peak RSS MiB", "last loss", "other load (cores, max)"],
        rows,
    ))  # fmt: skip
    label = lambda r: f"{r['impl']} {r['net']} b{r['batch']} {r['optimizer']} r{r['round']}"  # noqa: E731
    _common.print_notes(flat, label)
    _common.print_load_warnings(flat, label)
    if impls == ["cnnx", "torch"]:
        ratio_rows = []
        for net, b, opt in configs:
            cr, tr = runs[("cnnx", net, b, opt)], runs[("torch", net, b, opt)]
            pairs = [
                (c, t) for c, t in zip(cr, tr, strict=True)
                if c["status"] == "ok" and t["status"] == "ok"
            ]  # fmt: skip
            if not pairs:
                ratio_rows.append([net, b, opt, "n/a", "", "n/a", "n/a"])
                continue
            per_round = [
                _common.median(c["samples_per_s"]) / _common.median(t["samples_per_s"])
                for c, t in pairs
            ]
            spread = ", ".join(f"{r:.2f}" for r in per_round)
            # Fastest block of each: what each library reaches when the machine lets it.
            best = max(v for c, _ in pairs for v in c["samples_per_s"]) / max(
                v for _, t in pairs for v in t["samples_per_s"]
            )
            peak_c = max(c["peak_rss_mib"] for c, _ in pairs)
            peak_t = max(t["peak_rss_mib"] for _, t in pairs)
            ratio_rows.append([
                net, b, opt, f"{_common.median(per_round):.2f}×", spread, f"{best:.2f}×",
                f"{peak_c:.0f} / {peak_t:.0f}",
            ])  # fmt: skip
        print("\ncnnx / torch samples/s (above 1: cnnx faster), ratio per round:\n")
        print(_common.format_table(
            ["network", "batch", "optimizer", "cnnx / torch (median)", "per round",
             "fastest block cnnx / torch", "peak RSS MiB cnnx / torch"],
            ratio_rows,
        ))  # fmt: skip
    print(f"\nload average at end: {_common.load_average()}")
    if args.json:
        _common.write_json_atomically(args.json, {"machine": dict(machine), "results": flat})
        print(f"raw results written to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
