#!/usr/bin/env python
"""Measure how hard the 6×6 digits are, with report 000's Table 4/5 protocol.

Five configurations are trained on the digits for every seed 0-9: SimpleCNN with SGD
(lr 0.9), RMSprop (lr 0.001, rho 0.9) and Adam (lr 0.01, beta1 0.7, beta2 0.99), and
the pooling-free EnhancedCNN with the same RMSprop and Adam. For each seed the data
are split 80/20 per class (``stratified_split(y, 0.2, seed=seed)``: 78 training and
18 validation samples), the model is built with ``cnnx.models.get(name, seed=seed)``
and trained full-batch for 300 epochs with ``cnnx.fit(..., seed=seed)``; the final
epoch's validation accuracy is recorded. The script prints the per-seed accuracies
(like the report's Table 4) and their mean ± population std-dev (like its Table 5).

Run from the repository root:

    python data/calibrate_digits6x6.py                  # the bundled workbook
    python data/calibrate_digits6x6.py --workbook my.xlsx
    python data/calibrate_digits6x6.py --gen-seed 7     # draw in memory with another seed
    python data/calibrate_digits6x6.py --set NOISE_STD=0.08 --set "SIZE_RANGE=(0.85, 1.0)"

``--gen-seed`` and ``--set`` draw the digits in memory with ``make_digits6x6.py``
(next to this script) instead of reading a workbook; ``--set KNOB=VALUE`` overrides one
of its module-level knobs for this run only (VALUE is a Python literal). Nothing is
written. The whole table (50 trainings) takes about 10 s on one CPU core; ``--jobs``
trains several runs in parallel processes (the results do not depend on it).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import cnnx
from cnnx.datasets import load_digits6x6, stratified_split

# name -> (model name, optimizer class name, optimizer settings), as in report 000.
CONFIGS: dict[str, tuple[str, str, dict[str, float]]] = {
    "S-SGD": ("simple_cnn", "SGD", {"lr": 0.9}),
    "S-RMSprop": ("simple_cnn", "RMSprop", {"lr": 0.001, "rho": 0.9}),
    "S-Adam": ("simple_cnn", "Adam", {"lr": 0.01, "beta1": 0.7, "beta2": 0.99}),
    "E-RMSprop": ("enhanced_cnn", "RMSprop", {"lr": 0.001, "rho": 0.9}),
    "E-Adam": ("enhanced_cnn", "Adam", {"lr": 0.01, "beta1": 0.7, "beta2": 0.99}),
}
SEEDS = tuple(range(10))
EPOCHS = 300
VAL_FRACTION = 0.2


def run_once(config: str, seed: int, X: np.ndarray, y: np.ndarray, epochs: int = EPOCHS) -> float:
    """Train one configuration on one seed's split; returns the final validation accuracy.

    Args:
        config: a key of :data:`CONFIGS`.
        seed: seeds the split, the initial weights and ``fit``.
        X: ``(N, 1, 6, 6) float32`` images in [0, 1].
        y: ``(N,) int64`` labels in {0, 1, 2}.
        epochs: full-batch epochs.
    """
    model_name, optimizer_name, settings = CONFIGS[config]
    train_idx, val_idx = stratified_split(y, VAL_FRACTION, seed=seed)
    model = cnnx.models.get(model_name, seed=seed)
    optimizer = getattr(cnnx.optim, optimizer_name)(model.named_parameters(), **settings)
    history = cnnx.fit(
        model,
        optimizer,
        (X[train_idx], y[train_idx]),
        (X[val_idx], y[val_idx]),
        epochs=epochs,
        seed=seed,
    )
    return float(history.final.val_accuracy)


def measure(
    X: np.ndarray, y: np.ndarray, *, seeds=SEEDS, epochs: int = EPOCHS, jobs: int = 1
) -> dict[str, list[float]]:
    """Final validation accuracy of every configuration on every seed.

    Returns:
        ``{config: [accuracy for each seed]}`` in the order of :data:`CONFIGS`.
    """
    tasks = [(config, seed) for config in CONFIGS for seed in seeds]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_once, c, s, X, y, epochs) for c, s in tasks]
            accuracies = [f.result() for f in futures]
    else:
        accuracies = [run_once(c, s, X, y, epochs) for c, s in tasks]
    results: dict[str, list[float]] = {config: [] for config in CONFIGS}
    for (config, _), accuracy in zip(tasks, accuracies, strict=True):
        results[config].append(accuracy)
    return results


def format_table(results: dict[str, list[float]], seeds=SEEDS) -> str:
    """Per-seed accuracies with mean ± population std-dev, one row per configuration."""
    lines = [f"{'model':<10}" + "".join(f"{'seed ' + str(s):>8}" for s in seeds) + "   mean ± std"]
    for config, accs in results.items():
        row = "".join(f"{a:>8.3f}" for a in accs)
        lines.append(f"{config:<10}{row}   {np.mean(accs):.4f} ± {np.std(accs):.4f}")
    return "\n".join(lines)


def _parse_setting(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--set expects KNOB=VALUE, got {text!r}")
    try:
        return name.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError) as error:
        raise argparse.ArgumentTypeError(
            f"--set {name.strip()}: {value!r} is not a Python literal ({error})"
        ) from None


def _generated(gen_seed: int | None, settings: list[tuple[str, object]]):
    """Draw the digits in memory with make_digits6x6.py and the given knob overrides.

    The generator is loaded as a private copy, so the overrides never reach another
    import of it. Returns ``X (N, 1, 6, 6) float32`` in [0, 1] and ``y (N,) int64``.
    """
    path = Path(__file__).resolve().parent / "make_digits6x6.py"
    spec = importlib.util.spec_from_file_location("_calibrate_make_digits6x6", path)
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator  # dataclasses look their module up here
    try:
        spec.loader.exec_module(generator)
        for name, value in settings:
            if not name.isupper() or not hasattr(generator, name):
                raise SystemExit(f"--set {name}: {path.name} has no knob of that name")
            setattr(generator, name, value)
        digits = generator.generate(seed=generator.SEED if gen_seed is None else gen_seed)
    finally:
        sys.modules.pop(spec.name, None)
    X = (digits.pixels.astype(np.float32) / np.float32(255))[:, None]
    return X, digits.labels.astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--workbook", type=Path, help="workbook to measure (default: bundled)")
    source.add_argument("--gen-seed", type=int, help="draw the digits with this seed instead")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        type=_parse_setting,
        metavar="KNOB=VALUE",
        help="override a make_digits6x6.py knob (implies drawing in memory; repeatable)",
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="default: %(default)s")
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes (default: 1)")
    args = parser.parse_args(argv)
    if args.workbook is not None and args.settings:
        parser.error("--set draws the digits in memory; it cannot be used with --workbook")
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")

    if args.gen_seed is not None or args.settings:
        X, y = _generated(args.gen_seed, args.settings)
    else:
        X, y = load_digits6x6(args.workbook)
    print(format_table(measure(X, y, epochs=args.epochs, jobs=args.jobs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
