"""A search space given as flags: ``--param lr=loguniform:1e-4:1e-1``.

Each parameter is one Optuna distribution, suggested through the trial's own
``suggest_*`` call (Optuna does the sampling)::

    lr=loguniform:1e-4:1e-1         a float, uniform in log(lr)
    beta1=uniform:0.5:0.99          a float, uniform
    hidden=int:32:256               an integer, uniform (int:32:256:32 adds a step)
    batch_size=logint:16:256        an integer, uniform in its log
    optimizer=choice:adam,rmsprop,sgd   one of the values (numbers stay numbers)

What a name sets in the run definition: ``optimizer``, ``epochs`` and
``batch_size`` set those fields; an optimizer hyperparameter (``lr``, ``momentum``,
``rho``, ``beta1``, ``beta2``, ``eps``, ``weight_decay``) sets that
hyperparameter; any other name is an argument of the model (``hidden`` of
``mlp``, ``kernel_size`` of ``toy_convnet``).

When ``optimizer`` is searched, a hyperparameter is suggested only in the trials
whose optimizer takes it (``beta1`` only with adam): Optuna's samplers handle such
conditional spaces.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cnnx.experiment.grid import optimizer_hyperparameters
from cnnx.optim import OPTIMIZERS

KINDS = ("loguniform", "uniform", "int", "logint", "choice")
#: Names that set a field of the run definition rather than a hyperparameter or model option.
SPEC_FIELDS = ("optimizer", "epochs", "batch_size")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SpaceError(ValueError):
    """A ``--param`` that cannot be read; the message quotes it."""


def all_hyperparameters() -> set[str]:
    return set().union(*(optimizer_hyperparameters(name) for name in OPTIMIZERS))


def _number(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpaceError(f"{flag}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SpaceError(f"{flag}: {text!r} is not a finite number")
    return value


def _choice_value(text: str) -> Any:
    text = text.strip()
    if text.lower() in ("none", "full"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True)
class Param:
    """One searched parameter.

    Attributes:
        name: what it sets (``"lr"``, ``"optimizer"``, ``"hidden"``).
        kind: one of :data:`KINDS`.
        low, high: the range of a numeric kind (inclusive).
        step: the step of an ``int`` range (default 1).
        choices: the values of a ``choice``.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: int | None = None
    choices: tuple[Any, ...] = ()

    @property
    def target(self) -> str:
        """``"field"``, ``"hyperparameter"`` or ``"model_option"``."""
        if self.name in SPEC_FIELDS:
            return "field"
        if self.name in all_hyperparameters():
            return "hyperparameter"
        return "model_option"

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name} ∈ {{{', '.join(map(str, self.choices))}}}"
        scale = {"loguniform": "log-uniform", "logint": "log-uniform integer"}.get(self.kind)
        scale = scale or {"uniform": "uniform", "int": "integer"}[self.kind]
        step = f" step {self.step}" if self.step else ""
        return f"{self.name} ∈ [{self.low:g}, {self.high:g}] {scale}{step}"

    def suggest(self, trial: Any) -> Any:
        """Ask Optuna's ``trial`` for this parameter's value."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind in ("int", "logint"):
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=self.step or 1,
                log=self.kind == "logint",
            )  # fmt: skip
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "loguniform")


def parse_param(text: str) -> Param:
    """Parse one ``--param NAME=KIND:ARGS`` value.

    Raises:
        SpaceError: a malformed value, an unknown kind, an empty or reversed range,
            a log range that includes 0, an optimizer that does not exist.
    """
    flag = f"--param {text!r}"
    name, sep, rest = text.partition("=")
    name = name.strip().replace("-", "_")
    kind, sep2, args = rest.partition(":")
    kind = kind.strip().lower()
    if not sep or not sep2 or not _NAME.fullmatch(name):
        raise SpaceError(
            f"{flag}: expected NAME=KIND:ARGS, e.g. lr=loguniform:1e-4:1e-1 or "
            "optimizer=choice:adam,sgd"
        )
    if kind not in KINDS:
        raise SpaceError(f"{flag}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "choice":
        values = tuple(_choice_value(v) for v in args.split(","))
        if not args.strip() or any(v == "" for v in values):
            raise SpaceError(f"{flag}: choice needs comma-separated values, e.g. choice:a,b")
        if len(set(map(repr, values))) != len(values):
            raise SpaceError(f"{flag}: a value appears twice")
        if name == "optimizer":
            unknown = [v for v in values if v not in OPTIMIZERS]
            if unknown:
                raise SpaceError(
                    f"{flag}: unknown optimizer {unknown[0]!r}; available: "
                    f"{', '.join(sorted(OPTIMIZERS))}"
                )
        return Param(name, kind, choices=values)
    if name == "optimizer":
        raise SpaceError(f"{flag}: the optimizer is searched with choice:NAME,NAME,...")
    parts = args.split(":")
    integer = kind in ("int", "logint")
    if len(parts) not in ((2, 3) if kind == "int" else (2,)):
        usage = "int:LOW:HIGH[:STEP]" if kind == "int" else f"{kind}:LOW:HIGH"
        raise SpaceError(f"{flag}: expected {usage}")
    low, high = (_number(p, flag) for p in parts[:2])
    step = None
    if integer:
        if low != int(low) or high != int(high):
            raise SpaceError(f"{flag}: {kind} needs integer bounds")
        low, high = int(low), int(high)
        if len(parts) == 3:
            step = _number(parts[2], flag)
            if step != int(step) or step < 1:
                raise SpaceError(f"{flag}: the step must be a positive integer")
            step = int(step)
    if not low < high:
        raise SpaceError(f"{flag}: LOW must be smaller than HIGH")
    if kind in ("loguniform", "logint") and low <= 0:
        raise SpaceError(f"{flag}: a log scale needs LOW > 0")
    if name in ("epochs", "batch_size") and not integer:
        raise SpaceError(f"{flag}: {name} is an integer; use int, logint or choice")
    return Param(name, kind, low, high, step)


@dataclass(frozen=True)
class SearchSpace:
    """The searched parameters, in the order given (optimizer always first)."""

    params: tuple[Param, ...]

    def __post_init__(self) -> None:
        if not self.params:
            raise SpaceError("the search space is empty: give at least one --param")
        names = [p.name for p in self.params]
        for name in names:
            if names.count(name) > 1:
                raise SpaceError(f"--param {name} is given twice")
        ordered = sorted(self.params, key=lambda p: p.name != "optimizer")
        object.__setattr__(self, "params", tuple(ordered))

    @classmethod
    def parse(cls, texts: Iterable[str]) -> SearchSpace:
        return cls(tuple(parse_param(t) for t in texts))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def check(self, optimizer: str) -> None:
        """Refuse a hyperparameter that no optimizer of the search takes.

        Args:
            optimizer: the base run's optimizer (used when ``optimizer`` is not searched).
        """
        choices = next((p.choices for p in self.params if p.name == "optimizer"), (optimizer,))
        for param in self.params:
            if param.target != "hyperparameter":
                continue
            if not any(param.name in optimizer_hyperparameters(o) for o in choices):
                raise SpaceError(
                    f"--param {param.name}: none of the optimizers searched "
                    f"({', '.join(choices)}) takes {param.name}"
                )

    def suggest(self, trial: Any, optimizer: str) -> dict[str, Any]:
        """One point of the space: every parameter that applies to the trial's optimizer.

        Args:
            trial: an Optuna trial.
            optimizer: the base run's optimizer (used when it is not searched).

        Returns:
            ``{name: value}`` in the order of :attr:`params`.
        """
        values: dict[str, Any] = {}
        for param in self.params:
            if param.target == "hyperparameter":
                chosen = values.get("optimizer", optimizer)
                if param.name not in optimizer_hyperparameters(chosen):
                    continue
            values[param.name] = param.suggest(trial)
        return values

    def describe(self) -> list[str]:
        return [p.describe() for p in self.params]


def apply(spec_fields: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The run definition's fields with one point of the space applied.

    Args:
        spec_fields: ``RunSpec.to_dict()`` of the base run.
        values: from :meth:`SearchSpace.suggest`.

    Returns:
        A new dict of fields. A changed optimizer keeps only the base
        hyperparameters it takes (the base's ``beta1`` is dropped for sgd).
    """
    fields = dict(spec_fields)
    hyper = dict(fields.get("hyperparameters") or {})
    options = dict(fields.get("model_options") or {})
    optimizer = values.get("optimizer", fields["optimizer"])
    if optimizer != fields["optimizer"]:
        allowed = optimizer_hyperparameters(optimizer)
        hyper = {k: v for k, v in hyper.items() if k in allowed}
    for name, value in values.items():
        param_target = Param(name, "choice").target
        if param_target == "field":
            fields[name] = value
        elif param_target == "hyperparameter":
            hyper[name] = value
        else:
            options[name] = value
    fields["hyperparameters"] = hyper
    fields["model_options"] = options
    return fields
