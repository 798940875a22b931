"""Training throughput and peak memory of the slides' MNIST CNN: cnnx against PyTorch (CPU).

Network: Conv 3×3 1→8, ReLU, MaxPool 2, Conv 3×3 8→16, ReLU, MaxPool 2, Flatten, Linear
400→10; He init; softmax cross-entropy; Adam lr 1e-3. One epoch is a shuffled pass over
``--samples`` images in minibatches (forward, loss, backward, optimizer step).

Run from the repository root::

    python bench/bench_mnist.py                       # batch 64 and 256, all usable cores
    python bench/bench_mnist.py --threads 1 --no-torch

Every (implementation, batch size) pair runs in its own worker process, so peak RSS, thread
pools and imports of one never count against another. See bench/README.md for the columns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import _common

SCRIPT = str(Path(__file__).resolve())
LR, BETA1, BETA2 = 1e-3, 0.9, 0.999


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[64, 256],
        metavar="B",
        help="minibatch sizes to measure (default: 64 256)",
    )
    p.add_argument(
        "--epochs", type=int, default=5, help="timed epochs; the median is reported (default: 5)"
    )
    p.add_argument(
        "--warmup", type=int, default=1, help="untimed epochs before the timed ones (default: 1)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=_common.available_cores(),
        help=f"BLAS/OpenMP/torch threads (default: usable cores, here {_common.available_cores()})",
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="device for cnnx; torch always runs on the CPU (default: cpu)",
    )
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    p.add_argument("--no-cnnx", action="store_true", help="skip the cnnx rows")
    p.add_argument(
        "--samples",
        type=int,
        default=10_000,
        help="images per epoch, from the start of the t10k set (default: 10000)",
    )
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="use random data of MNIST's shape instead of the real images",
    )
    p.add_argument(
        "--data-root",
        default=_common.DEFAULT_MNIST_ROOT,
        help=f"directory holding {_common.MNIST_IMAGES} and {_common.MNIST_LABELS} "
        f"(default: {_common.DEFAULT_MNIST_ROOT})",
    )
    p.add_argument("--seed", type=int, default=0, help="model init and shuffling seed")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON here")
    _common.add_common_options(p)
    p.add_argument("--worker", choices=["cnnx", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("epochs", "samples", "threads", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    if any(b < 1 for b in args.batch_sizes):
        p.error(f"--batch-sizes must all be >= 1, got {args.batch_sizes}")
    if any(b > args.samples for b in args.batch_sizes):
        p.error(f"--batch-sizes {args.batch_sizes}: each must be <= --samples {args.samples}")
    return args


# --------------------------------------------------------------------------- worker side


def load_data(args: argparse.Namespace) -> tuple[Any, Any, str]:
    if args.synthetic:
        return _common.synthetic_mnist(args.samples, args.seed)
    return _common.load_mnist_test(args.data_root, args.samples)


def build_step(impl: str, args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The training step of one implementation; returns ``(step, sync, extra info)``."""
    if impl == "cnnx":
        step, sync, _dev = _common.make_cnnx_trainer(
            "mnist_cnn", args.device, args.seed, LR, BETA1, BETA2
        )
        return step, sync, {"device": args.device}
    import torch
    from baselines.torch_models import build_mnist_cnn, make_torch_trainer

    torch.set_num_threads(args.threads)
    step = make_torch_trainer(build_mnist_cnn(args.seed), LR, BETA1, BETA2)
    return step, lambda: None, {"device": "cpu", "torch_threads": torch.get_num_threads()}


def worker(args: argparse.Namespace) -> None:
    impl = args.worker
    batch = args.batch_sizes[0]
    missing = _common.cnnx_missing() if impl == "cnnx" else _common.torch_missing()
    if missing is not None:
        _common.emit_result({"impl": impl, "batch": batch, "status": "n/a", "reason": missing})
        return
    X, y, source = load_data(args)
    step, sync, extra = build_step(impl, args)
    probe_before = _common.speed_probe_ms()
    rss_before = _common.current_rss_mib()
    probe = _common.OtherLoadProbe()
    seconds, losses, per_epoch = _common.time_minibatch_epochs(
        step, sync, X, y, batch, args.warmup + args.epochs, args.seed
    )
    other_cores = probe.cores()
    probe_after = _common.speed_probe_ms()
    timed = seconds[args.warmup :]
    _common.emit_result(
        {
            "impl": impl,
            "batch": batch,
            "status": "ok",
            "data": source,
            "samples_per_epoch": per_epoch,
            "warmup_seconds": seconds[: args.warmup],
            "epoch_seconds": timed,
            "samples_per_s": [per_epoch / s for s in timed],
            "last_batch_loss": losses,
            "rss_before_training_mib": rss_before,
            "peak_rss_mib": _common.peak_rss_mib(),
            "other_processes_cores": other_cores,
            "speed_probe_ms": [probe_before, probe_after],
            "blas_threads": _common.blas_runtime()["threads"],
            **extra,
        }
    )


# --------------------------------------------------------------------------- parent side


def worker_args(args: argparse.Namespace, impl: str, batch: int) -> list[str]:
    out = [
        "--worker",
        impl,
        "--batch-sizes",
        str(batch),
        "--epochs",
        str(args.epochs),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--samples",
        str(args.samples),
        "--data-root",
        args.data_root,
        "--seed",
        str(args.seed),
    ]
    if args.synthetic:
        out.append("--synthetic")
    return out


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def probe_range(values: list[float]) -> str:
    return f"{min(values):.0f}–{max(values):.0f}"


def result_row(runs: list[dict[str, Any]]) -> list[str]:
    """One table row from the runs (one per round) of an (implementation, batch size) pair."""
    r = runs[0]
    failed = [x for x in runs if x["status"] != "ok"]
    if failed:
        return [
            r["impl"],
            "-",
            str(r["batch"]),
            "-",
            f"{failed[0]['status']} (see notes)",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
    sps = [v for x in runs for v in x["samples_per_s"]]
    seconds = [v for x in runs for v in x["epoch_seconds"]]
    threads = f"blas {r['blas_threads']}"
    if "torch_threads" in r:
        threads += f", torch {r['torch_threads']}"
    growth = [
        x["peak_rss_mib"] - x["rss_before_training_mib"]
        for x in runs
        if x["rss_before_training_mib"] is not None
    ]
    loads = [x["other_processes_cores"] for x in runs if x["other_processes_cores"] is not None]
    return [
        r["impl"],
        r["device"],
        str(r["batch"]),
        threads,
        fmt(_common.median(sps), 0),
        f"{min(sps):,.0f}–{max(sps):,.0f}",
        f"{len(runs)} × {len(r['epoch_seconds'])}",
        fmt(_common.median(seconds), 3),
        fmt(max(x["peak_rss_mib"] for x in runs)),
        fmt(max(growth) if growth else None),
        f"{runs[-1]['last_batch_loss'][-1]:.4f}",
        fmt(max(loads) if loads else None, 2),
        probe_range([v for x in runs for v in x["speed_probe_ms"]]),
    ]


def ratio_row(
    cnnx_runs: list[dict[str, Any]], torch_runs: list[dict[str, Any]], batch: int
) -> list[str]:
    """Speed and memory ratios of one batch size; the speed ratio is taken per round."""
    runs = cnnx_runs + torch_runs
    if not cnnx_runs or not torch_runs or any(x["status"] != "ok" for x in runs):
        return [str(batch), "n/a", "n/a", "n/a (a row has no result)", "", "n/a"]
    per_round = [
        _common.median(c["samples_per_s"]) / _common.median(t["samples_per_s"])
        for c, t in zip(cnnx_runs, torch_runs, strict=True)
    ]
    cs = _common.median([v for x in cnnx_runs for v in x["samples_per_s"]])
    ts = _common.median([v for x in torch_runs for v in x["samples_per_s"]])
    spread = f"{min(per_round):.2f}–{max(per_round):.2f}" if len(per_round) > 1 else "(1 round)"
    peak = max(x["peak_rss_mib"] for x in cnnx_runs) / max(x["peak_rss_mib"] for x in torch_runs)
    return [
        str(batch),
        fmt(cs, 0),
        fmt(ts, 0),
        f"{_common.median(per_round):.2f}×",
        spread,
        f"{peak:.2f}×",
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Before anything imports NumPy or torch: their thread pools read these once.
    _common.set_thread_env(args.threads)
    if args.worker:
        worker(args)
        return

    machine = _common.machine_report(args.threads)
    print("# MNIST CNN training throughput (bench/bench_mnist.py)\n")
    _common.print_machine_report(machine)
    _, _, source = load_data(args)
    print(f"{'data'.ljust(21)} : {source}; {args.samples} images/epoch, last partial batch dropped")
    print(
        f"{'timing'.ljust(21)} : per row and round {args.warmup} warm-up + {args.epochs} "
        f"timed epochs, {args.rounds} round(s); median of all timed epochs reported"
    )
    print(
        f"{'memory'.ljust(21)} : peak RSS of the row's own worker process "
        "(resource.getrusage ru_maxrss)\n",
        flush=True,
    )

    impls = [i for i, skip in (("cnnx", args.no_cnnx), ("torch", args.no_torch)) if not skip]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {
        (i, b): [] for b in args.batch_sizes for i in impls
    }
    for k in range(args.rounds):
        for b in args.batch_sizes:
            for impl in _common.round_order(impls, k):
                result = _common.run_worker(
                    SCRIPT,
                    worker_args(args, impl, b),
                    f"round {k + 1}/{args.rounds}: {impl} batch {b}",
                    {"impl": impl, "batch": b},
                    args.wait_idle,
                )
                runs[(impl, b)].append({**result, "round": k + 1})
    flat = [x for group in runs.values() for x in group]

    print(
        _common.format_table(
            [
                "impl",
                "device",
                "batch",
                "threads",
                "samples/s (median)",
                "samples/s min–max",
                "rounds × epochs",
                "s/epoch (median)",
                "peak RSS MiB",
                "RSS growth in training MiB",
                "last-batch loss",
                "other procs' load (cores, max)",
                "speed probe ms",
            ],
            [result_row(group) for group in runs.values()],
        )
    )
    label = lambda r: f"{r['impl']} batch {r['batch']} round {r['round']}"  # noqa: E731
    _common.print_notes(flat, label)
    _common.print_load_warnings(flat, label)
    if impls == ["cnnx", "torch"]:
        print("\ncnnx / torch (above 1 means cnnx trains faster or uses more memory):\n")
        print(
            _common.format_table(
                [
                    "batch",
                    "cnnx samples/s",
                    "torch samples/s",
                    "cnnx / torch speed",
                    "per-round min–max",
                    "cnnx / torch peak RSS",
                ],
                [ratio_row(runs[("cnnx", b)], runs[("torch", b)], b) for b in args.batch_sizes],
            )
        )
    print(f"\nload average at end: {_common.load_average()}")
    if args.json:
        _common.write_json_atomically(args.json, {"machine": dict(machine), "results": flat})
        print(f"raw results written to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
