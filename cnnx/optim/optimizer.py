"""The optimizer base class: parameter bookkeeping, weight decay, state and its serialisation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from cnnx.backends import device_of, get_array_module, to_host
from cnnx.backends.primitives import elementwise_update
from cnnx.nn.module import Parameter


def check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def check_unit_interval(name: str, value: float) -> float:
    """Validate ``0 <= value < 1`` (momentum, rho, betas)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.floating)
        or not (0.0 <= value < 1.0)
    ):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def check_non_negative(name: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.floating)
        or not value >= 0
    ):
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def _named(params: Iterable[Any]) -> list[tuple[str, Parameter]]:
    items = list(params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    named: list[tuple[str, Parameter]] = []
    if all(isinstance(it, tuple) and len(it) == 2 for it in items):
        named = [(str(n), p) for n, p in items]
    elif all(isinstance(it, Parameter) for it in items):
        names = [p.name for p in items]
        if all(names) and len(set(names)) == len(names):
            named = list(zip(names, items, strict=True))
        else:
            named = [(str(i), p) for i, p in enumerate(items)]
    else:
        raise TypeError(
            "optimizer params must be model.parameters() (Parameters) or "
            "model.named_parameters() ((name, Parameter) pairs)"
        )
    for name, p in named:
        if not isinstance(p, Parameter):
            raise TypeError(f"optimizer param {name!r} is {type(p).__name__}, not a Parameter")
    if len({n for n, _ in named}) != len(named):
        raise ValueError("optimizer params have duplicate names")
    return named


class _Group:
    """Parameters that share a device and dtype, packed into flat buffers.

    Each parameter's ``data`` and ``grad`` become views into one flat array
    each, and the optimizer's state is one flat array per key, so an update
    rule runs a handful of array operations per step for the whole model
    instead of per parameter (for small networks the per-call overhead, not
    the arithmetic, is what costs).
    """

    def __init__(self, names: list[str], params: list[Parameter], state: dict[str, dict[str, Any]]):
        dev = self.device = device_of(params[0].data)
        with dev:  # the parameters' device, whatever device is current
            self._build(names, params, state, dev)

    def _build(
        self, names: list[str], params: list[Parameter], state: dict[str, dict[str, Any]], dev: Any
    ) -> None:
        xp = dev.xp
        dtype = params[0].data.dtype
        self.names = names
        self.params = params
        self.slices: list[slice] = []
        start = 0
        for p in params:
            self.slices.append(slice(start, start + p.size))
            start += p.size
        self.data = xp.empty(start, dtype=dtype)
        self.grad = xp.empty(start, dtype=dtype)
        for p, part in zip(params, self.slices, strict=True):
            self.data[part] = p.data.reshape(-1)
            self.grad[part] = p.grad.reshape(-1)
            p.data = self.data[part].reshape(p.shape)
            p.grad = self.grad[part].reshape(p.shape)
        self.views = [(p.data, p.grad) for p in params]
        self.state: dict[str, Any] = {}
        keys = {k for name in names for k in state.get(name, {})}
        for key in sorted(keys):
            flat = xp.zeros(start, dtype=dtype)
            for name, part in zip(names, self.slices, strict=True):
                if key in state.get(name, {}):
                    flat[part] = dev.asarray(state[name][key], dtype=dtype).reshape(-1)
            self.state[key] = flat

    def intact(self) -> bool:
        """Whether every parameter still uses the views this group gave it."""
        return all(
            p.data is data and p.grad is grad
            for p, (data, grad) in zip(self.params, self.views, strict=True)
        )

    def state_of(self, index: int) -> dict[str, Any]:
        """Views of one parameter's state, shaped like the parameter."""
        shape = self.params[index].shape
        return {k: flat[self.slices[index]].reshape(shape) for k, flat in self.state.items()}


class Optimizer:
    """Base class: subclasses implement :meth:`update` once, in ``xp`` code.

    Args:
        params: ``model.named_parameters()`` or ``model.parameters()``.
        lr: learning rate (> 0).
        weight_decay: L2 coefficient (>= 0); the update uses ``g = grad + weight_decay·p``.
        **hyper: the rule's own hyperparameters, validated by the subclass.

    The parameters' data and gradients are packed into one flat buffer per
    device and dtype (each Parameter keeps a view), and :meth:`update` runs once
    per buffer. If a parameter's arrays are replaced (``Module.to``, or code
    assigning ``p.data``), the buffers are rebuilt from the current values at
    the next step. State is created lazily on the parameters' device, and
    :attr:`state`, :meth:`state_dict` and :meth:`load_state_dict` present it per
    parameter name, so it serialises with the model.
    """

    #: Names of the per-parameter state arrays the rule keeps (created at the first step).
    state_keys: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], lr: float, weight_decay: float = 0.0, **hyper: float):
        self.params = _named(params)
        self.hyper: dict[str, float] = {
            "lr": check_positive("lr", lr),
            "weight_decay": check_non_negative("weight_decay", weight_decay),
            **hyper,
        }
        self.step_count = 0
        self._groups: list[_Group] = []
        self._pack({})

    def _pack(self, state: dict[str, dict[str, Any]]) -> None:
        """(Re)build the flat buffers from the parameters' current arrays and ``state``."""
        by_key: dict[tuple[Any, Any], list[tuple[str, Parameter]]] = {}
        for name, p in self.params:
            by_key.setdefault((device_of(p.data), p.data.dtype), []).append((name, p))
        self._groups = [
            _Group([n for n, _ in items], [p for _, p in items], state) for items in by_key.values()
        ]

    def _packed(self) -> list[_Group]:
        if not all(group.intact() for group in self._groups):
            self._pack(self.state)
        return self._groups

    @property
    def state(self) -> dict[str, dict[str, Any]]:
        """Per-parameter state, ``{name: {key: array}}`` (views of the flat buffers)."""
        out: dict[str, dict[str, Any]] = {}
        for group in self._groups:
            for i, name in enumerate(group.names):
                out[name] = group.state_of(i)
        return {name: out[name] for name, _ in self.params}

    @property
    def lr(self) -> float:
        return self.hyper["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.hyper["lr"] = check_positive("lr", value)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({args})"

    def zero_grad(self) -> None:
        """Clear the gradients of every parameter this optimizer updates."""
        for group in self._packed():
            with group.device:
                group.grad.fill(0)

    def step(self) -> None:
        """Apply one update to every parameter, in place."""
        self.step_count += 1
        wd = self.hyper["weight_decay"]
        for group in self._packed():
            with group.device:  # temporaries and lazily made state land with the parameters
                g = group.grad
                if wd:
                    g = g + wd * group.data
                if set(self.state_keys) <= set(group.state):
                    # Elementwise, so it may run in parts (on the CPU, on several threads).
                    elementwise_update(self.update, group.data, g, group.state)
                else:
                    self.update(group.data, g, group.state)  # creates the state

    def update(self, p: Any, g: Any, state: dict[str, Any]) -> None:
        """Update ``p`` in place from gradient ``g`` (already including weight decay).

        ``p``, ``g`` and the arrays in ``state`` are flat buffers holding many
        parameters; a rule only uses elementwise operations, so it need not know.
        """
        raise NotImplementedError

    @staticmethod
    def _buffer(state: dict[str, Any], key: str, like: Any) -> Any:
        """Return ``state[key]``, first creating zeros like ``like`` (same device, dtype)."""
        buf = state.get(key)
        if buf is None:
            buf = get_array_module(like).zeros_like(like)
            state[key] = buf
        return buf

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters, step count and per-parameter state as host numpy arrays."""
        return {
            "type": type(self).__name__,
            "hyper": dict(self.hyper),
            "step_count": self.step_count,
            "state": {
                name: {k: to_host(v).copy() for k, v in st.items()}
                for name, st in self.state.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (arrays move to each parameter's device).

        Raises:
            ValueError: the state is for another optimizer type, names parameters
                this optimizer does not have (or lacks some), or has arrays whose
                shapes differ from the parameters'.
        """
        kind = state.get("type", type(self).__name__)
        if kind != type(self).__name__:
            raise ValueError(f"optimizer state is for {kind}, not {type(self).__name__}")
        saved = state.get("state", {})
        mine = {name for name, _ in self.params}
        if set(saved) != mine:
            missing = sorted(mine - set(saved))
            extra = sorted(set(saved) - mine)
            raise ValueError(
                f"{type(self).__name__} state does not match its parameters: "
                f"missing {missing}, unexpected {extra}"
            )
        by_name = dict(self.params)
        step_count = state.get("step_count", 0)
        if isinstance(step_count, bool) or not isinstance(step_count, int) or step_count < 0:
            raise ValueError(f"{type(self).__name__} step_count must be a non-negative integer")
        new_state: dict[str, dict[str, Any]] = {}
        for name, entries in saved.items():
            expected = set(self.state_keys) if step_count > 0 else set()
            if set(entries) != expected:
                raise ValueError(
                    f"{type(self).__name__} state for {name} has {sorted(entries)}, expected "
                    f"{sorted(expected)} after {step_count} steps"
                )
            p = by_name[name]
            new_state[name] = {}
            for key, value in entries.items():
                host = to_host(value)
                if host.shape != p.shape:
                    raise ValueError(
                        f"{type(self).__name__} state {name}.{key} has shape {host.shape}, "
                        f"parameter has {p.shape}"
                    )
                new_state[name][key] = device_of(p.data).asarray(host, dtype=p.dtype)
        hyper = dict(self.hyper)
        unknown = sorted(set(state.get("hyper", {})) - set(hyper))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no hyperparameters {unknown}")
        hyper.update({k: float(v) for k, v in state.get("hyper", {}).items()})
        self.hyper = hyper
        self._pack(new_state)
        self.step_count = step_count
