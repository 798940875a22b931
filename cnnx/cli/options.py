"""Optimizer flags shared by ``cnnx train`` and ``cnnx experiment``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cnnx.nn.module import Module
from cnnx.optim import OPTIMIZERS, Optimizer

# Which optimizers each hyperparameter flag applies to (lr and weight decay: all).
OPTIMIZER_FLAGS: dict[str, tuple[str, ...]] = {
    "momentum": ("momentum", "nesterov"),
    "rho": ("rmsprop",),
    "beta1": ("adam",),
    "beta2": ("adam",),
    "eps": ("adagrad", "rmsprop", "adam"),
}


def optimizer_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--optimizer`` and its hyperparameter flags to a click command."""
    flags = [
        click.option("--optimizer", type=click.Choice(sorted(OPTIMIZERS)),
                     help="Update rule (default: adam; sgd for patterns)."),
        click.option("--lr", type=float, help="Learning rate."),
        click.option("--momentum", type=float, help="Momentum μ (momentum, nesterov; 0.9)."),
        click.option("--rho", type=float, help="RMSprop's squared-gradient decay ρ (0.9)."),
        click.option("--beta1", type=float, help="Adam's β1 (0.9; 0.7 for digits6x6)."),
        click.option("--beta2", type=float, help="Adam's β2 (0.999; 0.99 for digits6x6)."),
        click.option("--eps", type=float, help="ε in the denominator (adagrad, rmsprop, adam)."),
        click.option("--weight-decay", type=float, help="L2 coefficient added to the gradient."),
    ]  # fmt: skip
    for flag in reversed(flags):
        command = flag(command)
    return command


def check_optimizer_flags(name: str, hyper: dict[str, Any]) -> None:
    """Refuse a flag that the chosen optimizer does not use (e.g. --rho with adam)."""
    for flag, owners in OPTIMIZER_FLAGS.items():
        if hyper.get(flag) is not None and name not in owners:
            raise click.UsageError(
                f"--{flag.replace('_', '-')} applies to {', '.join(owners)}, not to {name}"
            )


def build_optimizer(name: str, model: Module, hyper: dict[str, Any]) -> Optimizer:
    """Make optimizer ``name`` over ``model``'s parameters; bad values are usage errors."""
    hyper = {k: v for k, v in hyper.items() if v is not None}
    check_optimizer_flags(name, hyper)
    try:
        return OPTIMIZERS[name](model.named_parameters(), **hyper)
    except ValueError as exc:
        raise click.UsageError(f"--{str(exc).replace('_', '-')}") from None
