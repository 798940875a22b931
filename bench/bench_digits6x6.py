"""Seconds per 300-epoch full-batch run of report 000's SimpleCNN: cnnx, PyTorch and loops.

Network: Conv 3×3 1→3, Sigmoid, MaxPool 2×2, Conv 2×2 3→3, Sigmoid, Flatten → 3 logits;
softmax cross-entropy; Adam lr 0.01, β1 0.7, β2 0.99; Xavier normal init (std 1/sqrt(fan_in)).
Training set: the 80 % training part of the bundled 96-sample workbook (78 samples after the
per-class stratified split), one full batch per epoch.

Run from the repository root::

    python bench/bench_digits6x6.py
    python bench/bench_digits6x6.py --no-torch --loop-epochs 30

Each implementation runs in its own worker process. See bench/README.md for the columns.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import _common

SCRIPT = str(Path(__file__).resolve())
LR, BETA1, BETA2 = 0.01, 0.7, 0.99
TRAIN_SHAPE = (77, 1, 6, 6)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--epochs", type=int, default=300, help="epochs per run for cnnx and torch (default: 300)"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed runs for cnnx and torch; the median is reported (default: 5)",
    )
    p.add_argument(
        "--loop-epochs",
        type=int,
        default=100,
        help="epochs per run of the loop version, scaled up to --epochs in the "
        "table (default: 100)",
    )
    p.add_argument(
        "--loop-repeats", type=int, default=3, help="timed runs of the loop version (default: 3)"
    )
    p.add_argument(
        "--warmup-epochs",
        type=int,
        default=30,
        help="one untimed run of this many epochs before the timed runs "
        "(default: 30; the loop version uses min(this, --loop-epochs))",
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
        help="device for cnnx; torch and the loops run on the CPU (default: cpu)",
    )
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch row")
    p.add_argument("--no-loop", action="store_true", help="skip the loop-version row")
    p.add_argument("--no-cnnx", action="store_true", help="skip the cnnx row")
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="use random (77, 1, 6, 6) data with labels in {0, 1, 2} instead of "
        "cnnx.datasets.load_digits6x6",
    )
    p.add_argument("--seed", type=int, default=0, help="model init and data seed")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON here")
    _common.add_common_options(p)
    p.add_argument("--worker", choices=["cnnx", "torch", "loop"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("epochs", "repeats", "loop_epochs", "loop_repeats", "threads", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup_epochs < 0:
        p.error(f"--warmup-epochs must be >= 0, got {args.warmup_epochs}")
    return args


# --------------------------------------------------------------------------- data


def load_train_set(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """The training set: X ``(N, 1, 6, 6)`` float32, y ``(N,)`` int64, and its description.

    Real data comes from ``cnnx.datasets.load_digits6x6`` and its 80/20 split when the
    library has them; otherwise (or with ``--synthetic``) random data of the same shape.
    """
    import numpy as np

    reason = "--synthetic"
    if not args.synthetic:
        try:
            from cnnx.datasets import load_digits6x6, stratified_split
        except ImportError:
            reason = "cnnx.datasets.load_digits6x6 / stratified_split not available"
        else:
            X_all, y_all = load_digits6x6()
            train_idx, _ = stratified_split(y_all, val_fraction=0.2, seed=args.seed)
            X, y = X_all[train_idx], y_all[train_idx]
            return (
                X,
                y,
                (
                    f"cnnx.datasets.load_digits6x6() (bundled workbook), training part "
                    f"of stratified_split(val_fraction=0.2, seed={args.seed}): "
                    f"X {X.shape} {X.dtype}, y {y.shape} {y.dtype}"
                ),
            )
    rng = np.random.default_rng(args.seed)
    X = rng.random(TRAIN_SHAPE, dtype=np.float32)
    y = rng.integers(0, 3, size=TRAIN_SHAPE[0], dtype=np.int64)
    return X, y, f"SYNTHETIC uniform random {TRAIN_SHAPE}, labels in {{0,1,2}} ({reason})"


# --------------------------------------------------------------------------- worker side


def build_run(impl: str, args: argparse.Namespace, X: Any, y: Any):
    """A function ``run(epochs) -> (seconds, final loss)`` that trains a fresh model."""
    if impl == "cnnx":

        def run(epochs: int) -> tuple[float, float]:
            step, sync, dev = _common.make_cnnx_trainer(
                "simple_cnn", args.device, args.seed, LR, BETA1, BETA2
            )
            xb, yb = dev.asarray(X), dev.asarray(y)  # full batch moved once, as in training
            return timed_epochs(step, sync, xb, yb, epochs)

        return run, {"device": args.device}

    if impl == "torch":
        import torch
        from baselines.torch_models import build_simple_cnn, make_torch_trainer

        torch.set_num_threads(args.threads)

        def run(epochs: int) -> tuple[float, float]:
            step = make_torch_trainer(build_simple_cnn(args.seed), LR, BETA1, BETA2)
            return timed_epochs(step, lambda: None, X, y, epochs)

        return run, {"device": "cpu", "torch_threads": torch.get_num_threads()}

    from baselines.loop_cnn import make_loop_trainer

    def run(epochs: int) -> tuple[float, float]:
        step = make_loop_trainer(args.seed, LR, BETA1, BETA2)
        return timed_epochs(step, lambda: None, X, y, epochs)

    return run, {"device": "cpu"}


def timed_epochs(step, sync, X: Any, y: Any, epochs: int) -> tuple[float, float]:
    """Time ``epochs`` full-batch steps (the device is synchronised before the clock stops)."""
    loss = None
    t0 = time.perf_counter()
    for _ in range(epochs):
        loss = step(X, y)
    sync()
    return time.perf_counter() - t0, float(loss)


def worker(args: argparse.Namespace) -> None:
    impl = args.worker
    if impl == "cnnx":
        missing = _common.cnnx_missing()
    elif impl == "torch":
        missing = _common.torch_missing()
    else:
        missing = None
    if missing is not None:
        _common.emit_result({"impl": impl, "status": "n/a", "reason": missing})
        return
    X, y, source = load_train_set(args)
    run, extra = build_run(impl, args, X, y)
    epochs, repeats = (
        (args.loop_epochs, args.loop_repeats) if impl == "loop" else (args.epochs, args.repeats)
    )
    warmup = min(args.warmup_epochs, epochs)
    if warmup:
        run(warmup)
    seconds, losses = [], []
    probe_before = _common.speed_probe_ms()
    probe = _common.OtherLoadProbe()
    for _ in range(repeats):
        s, loss = run(epochs)
        seconds.append(s)
        losses.append(loss)
    _common.emit_result(
        {
            "impl": impl,
            "status": "ok",
            "data": source,
            "epochs_per_run": epochs,
            "warmup_epochs": warmup,
            "run_seconds": seconds,
            "final_loss": losses,
            "other_processes_cores": probe.cores(),
            "speed_probe_ms": [probe_before, _common.speed_probe_ms()],
            "blas_threads": _common.blas_runtime()["threads"],
            **extra,
        }
    )


# --------------------------------------------------------------------------- parent side


def worker_args(args: argparse.Namespace, impl: str) -> list[str]:
    out = [
        "--worker",
        impl,
        "--epochs",
        str(args.epochs),
        "--repeats",
        str(args.repeats),
        "--loop-epochs",
        str(args.loop_epochs),
        "--loop-repeats",
        str(args.loop_repeats),
        "--warmup-epochs",
        str(args.warmup_epochs),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--seed",
        str(args.seed),
    ]
    if args.synthetic:
        out.append("--synthetic")
    return out


def scaled_seconds(runs: list[dict[str, Any]], epochs: int) -> float:
    """Median seconds of one run over all rounds, scaled linearly to ``epochs`` epochs."""
    seconds = [v for x in runs for v in x["run_seconds"]]
    return _common.median(seconds) * epochs / runs[0]["epochs_per_run"]


def result_row(runs: list[dict[str, Any]], epochs: int) -> list[str]:
    """One table row from the runs (one per round) of an implementation."""
    r = runs[0]
    failed = [x for x in runs if x["status"] != "ok"]
    if failed:
        return [r["impl"], "-", "-", f"{failed[0]['status']} (see notes)", "", "", "", "", "", ""]
    threads = f"blas {r['blas_threads']}"
    if "torch_threads" in r:
        threads += f", torch {r['torch_threads']}"
    per_round = len(r["run_seconds"])
    measured = f"{len(runs)} × {per_round} × {r['epochs_per_run']} epochs"
    if r["epochs_per_run"] != epochs:
        measured += f", scaled ×{epochs / r['epochs_per_run']:g}"
    per_epoch_ms = [1e3 * v / r["epochs_per_run"] for x in runs for v in x["run_seconds"]]
    loads = [x["other_processes_cores"] for x in runs if x["other_processes_cores"] is not None]
    probes = [v for x in runs for v in x["speed_probe_ms"]]
    return [
        r["impl"],
        r["device"],
        threads,
        f"{scaled_seconds(runs, epochs):.4g}",
        measured,
        f"{min(per_epoch_ms):.4g}–{max(per_epoch_ms):.4g}",
        f"{runs[-1]['final_loss'][-1]:.5f}",
        str(r["warmup_epochs"]),
        "n/a" if not loads else f"{max(loads):.2f}",
        f"{min(probes):.0f}–{max(probes):.0f}",
    ]


def speedup(slow: list[dict[str, Any]], fast: list[dict[str, Any]], epochs: int) -> str:
    """``slow`` seconds / ``fast`` seconds, per round; median and, over rounds, min–max."""
    ratios = [
        scaled_seconds([s], epochs) / scaled_seconds([f], epochs)
        for s, f in zip(slow, fast, strict=True)
    ]
    text = f"{_common.median(ratios):.3g}×"
    if len(ratios) > 1:
        text += f" (per round {min(ratios):.3g}–{max(ratios):.3g})"
    return text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Before anything imports NumPy or torch: their thread pools read these once.
    _common.set_thread_env(args.threads)
    if args.worker:
        worker(args)
        return

    machine = _common.machine_report(args.threads)
    print("# SimpleCNN on 6×6 digits, full-batch Adam (bench/bench_digits6x6.py)\n")
    _common.print_machine_report(machine)
    _, _, source = load_train_set(args)
    print(f"{'data'.ljust(21)} : {source}")
    print(
        f"{'timing'.ljust(21)} : per row and round one untimed warm-up run, then timed runs "
        f"from a fresh model each; {args.rounds} round(s); median reported\n",
        flush=True,
    )

    impls = [
        i
        for i, skip in (("cnnx", args.no_cnnx), ("torch", args.no_torch), ("loop", args.no_loop))
        if not skip
    ]
    runs: dict[str, list[dict[str, Any]]] = {i: [] for i in impls}
    for k in range(args.rounds):
        for impl in _common.round_order(impls, k):
            result = _common.run_worker(
                SCRIPT,
                worker_args(args, impl),
                f"round {k + 1}/{args.rounds}: {impl}",
                {"impl": impl},
                args.wait_idle,
            )
            runs[impl].append({**result, "round": k + 1})
    flat = [x for group in runs.values() for x in group]

    print(
        _common.format_table(
            [
                "impl",
                "device",
                "threads",
                f"s per {args.epochs}-epoch run (median)",
                "rounds × runs × epochs",
                "ms/epoch min–max",
                "final loss",
                "warm-up epochs",
                "other procs' load (cores, max)",
                "speed probe ms",
            ],
            [result_row(group, args.epochs) for group in runs.values()],
        )
    )
    label = lambda r: f"{r['impl']} round {r['round']}"  # noqa: E731
    _common.print_notes(flat, label)
    _common.print_load_warnings(flat, label)

    ok = {i: group for i, group in runs.items() if all(x["status"] == "ok" for x in group)}
    if "cnnx" in ok:
        print("\nspeed-up of cnnx (other's seconds / cnnx seconds; above 1 = cnnx faster):")
        for other in ("torch", "loop"):
            if other in ok:
                print(f"- cnnx vs {other}: {speedup(ok[other], ok['cnnx'], args.epochs)}")
    elif ok:
        print("\nno cnnx result, so no cnnx ratios")
    if "torch" in ok and "loop" in ok:
        print(f"- for reference, torch vs loop: {speedup(ok['loop'], ok['torch'], args.epochs)}")
    print(f"\nload average at end: {_common.load_average()}")
    if args.json:
        _common.write_json_atomically(args.json, {"machine": dict(machine), "results": flat})
        print(f"raw results written to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
