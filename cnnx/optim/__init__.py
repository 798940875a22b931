"""Optimizers: SGD, Momentum, Nesterov, Adagrad, RMSprop, Adam."""

from cnnx.optim.optimizer import Optimizer
from cnnx.optim.rules import SGD, Adagrad, Adam, Momentum, Nesterov, RMSprop

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}

__all__ = ["OPTIMIZERS", "SGD", "Adagrad", "Adam", "Momentum", "Nesterov", "Optimizer", "RMSprop"]
