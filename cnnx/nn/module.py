"""Parameters, the Module base class and Sequential.

Layers are objects with an explicit ``forward(x)`` and ``backward(gy) -> gx``:
there is no autograd tape. A layer keeps what its backward needs from the last
forward call, accumulates parameter gradients into ``Parameter.grad`` (``+=``)
and returns the gradient with respect to its input.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnx.backends import (
    Device,
    device,
    device_of,
    get_array_module,
    ignore_float_errors,
    to_host,
)
from cnnx.errors import DeviceError


class Parameter:
    """A trainable array and its gradient.

    Attributes:
        data: the values, any shape, on the model's device (float32 by default).
        grad: the accumulated gradient, same shape/dtype/device as ``data``.
            Backward passes add into it; ``zero_grad()`` clears it.
        name: the parameter's dotted path in the model that last listed it
            (for example ``"0.weight"``); optimizers key their state by it.
    """

    __slots__ = ("data", "grad", "name")

    def __init__(self, data: Any, name: str = ""):
        xp = get_array_module(data)
        self.data = data
        self.grad = xp.zeros_like(data)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def zero_grad(self) -> None:
        with device_of(self.grad):
            self.grad.fill(0)

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.dtype})"


def _shape_str(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


class Module:
    """Base class of layers and models.

    Subclasses assign :class:`Parameter` objects, child modules and buffers
    (``register_buffer``) as attributes in ``__init__``; registration order is
    the order of ``named_parameters()``, so it is fixed and deterministic.

    Subclasses implement ``forward(x)`` and ``backward(gy) -> gx``.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration -------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        registry = self.__dict__
        if "_parameters" not in registry:
            raise AttributeError(
                f"{type(self).__name__}.__init__ must call super().__init__() before "
                f"assigning attribute {name!r}"
            )
        if isinstance(value, Parameter):
            if not value.name:
                value.name = name
            registry["_parameters"][name] = value
        elif isinstance(value, Module):
            registry["_modules"][name] = value
        elif name in registry["_buffers"]:
            registry["_buffers"][name] = value
        elif name in registry["_parameters"] or name in registry["_modules"]:
            registry["_parameters"].pop(name, None)
            registry["_modules"].pop(name, None)
        object.__setattr__(self, name, value)  # honours properties defined by subclasses

    def register_buffer(self, name: str, array: Any) -> None:
        """Register a non-trainable array (e.g. running statistics) saved in ``state_dict``."""
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    # -- the two passes -----------------------------------------------------------

    def forward(self, x: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def backward(self, gy: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward()")

    def backward_params(self, gy: Any) -> None:
        """Accumulate parameter gradients only; the input gradient is not needed.

        Training loops call this on a whole model, whose input is data. The
        default runs :meth:`backward` and drops its result; layers whose input
        gradient costs real work (Conv2D, Linear) skip computing it.
        """
        self.backward(gy)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        x = args[0] if args else None
        try:
            if type(x) is np.ndarray:
                return self.forward(*args, **kwargs)
            with device_of(x):  # compute, and allocate, where the input lives
                return self.forward(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            self._raise_if_devices_differ(x, exc)
            raise

    def _raise_if_devices_differ(self, x: Any, exc: Exception) -> None:
        """Turn an array-library error into DeviceError when input and parameters live apart."""
        if not hasattr(x, "shape"):
            return
        first = next(iter(self.parameters()), None)
        if first is None:
            return
        here, there = device_of(x), device_of(first.data)
        if here != there:
            raise DeviceError(
                f"{self!r}: the input lives on {here.spec} but the parameters on {there.spec}; "
                f"move the input with cnnx.device({there.spec!r}).asarray(x) or the model "
                f"with Module.to({here.spec!r})"
            ) from exc

    # -- traversal ----------------------------------------------------------------

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Yield ``(dotted_name, module)`` for this module and all descendants, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted_name, Parameter)`` in registration order (fixed, deterministic).

        As a side effect each parameter's ``name`` is set to its dotted name, so
        an optimizer given ``model.parameters()`` keys its state the same way.
        """
        for mod_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                full = f"{mod_name}.{name}" if mod_name else name
                param.name = full
                yield full, param

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for mod_name, module in self.named_modules(prefix):
            for name, buf in module._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), buf

    def num_parameters(self) -> int:
        """Total number of trainable scalars."""
        return sum(p.size for p in self.parameters())

    # -- state --------------------------------------------------------------------

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Module:
        """Switch this module and its descendants to training (or eval) mode."""
        for _, module in self.named_modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode: dropout off, batch norm uses running statistics."""
        return self.train(False)

    @property
    def device(self) -> Device:
        """The device of the first parameter or buffer (the CPU for a module with neither)."""
        for p in self.parameters():
            return device_of(p.data)
        for _, b in self.named_buffers():
            return device_of(b)
        return device("cpu")

    def to(self, device_spec: str | Device | None = None, dtype: Any = None) -> Module:
        """Move and/or cast every parameter, gradient and floating-point buffer, in place.

        Args:
            device_spec: target device (``"cpu"``, ``"cuda:0"``, a :class:`Device`) or None
                to stay.
            dtype: target floating dtype (``numpy.float32`` or ``numpy.float64``) or None
                to keep. Integer buffers are never cast.

        Returns:
            ``self``, for chaining.
        """
        target = device(device_spec) if device_spec is not None else None
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise ValueError(f"Module.to(dtype=...) expects a floating dtype, got {dtype}")

        def convert(a: Any) -> Any:
            dev = target if target is not None else device_of(a)
            want = dtype if (dtype is not None and a.dtype.kind == "f") else a.dtype
            return dev.asarray(a, dtype=want)

        for _, module in self.named_modules():
            for param in module._parameters.values():
                param.data = convert(param.data)
                param.grad = convert(param.grad)
            for name, buf in list(module._buffers.items()):
                module.register_buffer(name, convert(buf))
            module._reset_cache()
        return self

    def _reset_cache(self) -> None:
        """Drop anything cached from the last forward (called when arrays move)."""

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Return parameters and buffers as host ``numpy.ndarray`` copies, by dotted name."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for name, p in self.named_parameters():
            out[name] = to_host(p.data).copy()
        for name, b in self.named_buffers():
            out[name] = to_host(b).copy()
        return out

    def _state_targets(self) -> OrderedDict[str, tuple[Module, str, Any]]:
        targets: OrderedDict[str, tuple[Module, str, Any]] = OrderedDict()
        for mod_name, module in self.named_modules():
            for name, p in module._parameters.items():
                targets[f"{mod_name}.{name}" if mod_name else name] = (module, name, p.data)
            for name, b in module._buffers.items():
                targets[f"{mod_name}.{name}" if mod_name else name] = (module, name, b)
        return targets

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy values from ``state`` (name -> array, host or device) into this module.

        Every name and shape is checked before anything is changed, so a failed
        load leaves the module as it was. Values are cast to each target's dtype
        and moved to its device.

        Raises:
            KeyError: with ``strict``, names missing from ``state`` or not in the module
                (all of them listed).
            ValueError: a value's shape differs from the target's (name and both shapes).
        """
        targets = self._state_targets()
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing: " + ", ".join(missing))
            if unexpected:
                parts.append("unexpected: " + ", ".join(unexpected))
            raise KeyError(f"{type(self).__name__}.load_state_dict: " + "; ".join(parts))
        staged = []
        for key, (module, name, current) in targets.items():
            if key not in state:
                continue
            value = state[key]
            shape = tuple(getattr(value, "shape", np.shape(value)))
            if shape != tuple(current.shape):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {key!r} has shape "
                    f"{_shape_str(shape)} in the state but {_shape_str(current.shape)} in the model"
                )
            host = to_host(value)
            if host.dtype.kind not in "biuf":
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {key!r} has dtype {host.dtype}, "
                    "expected a numeric array"
                )
            staged.append((module, name, current, host))
        for module, name, current, host in staged:
            dev = device_of(current)
            new = dev.asarray(host, dtype=current.dtype)
            with dev:
                if name in module._parameters:
                    module._parameters[name].data[...] = new
                else:
                    current[...] = new

    # -- display ------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        lines.append(")")
        return "\n".join(lines)

    # -- input checks shared by layers --------------------------------------------

    def _check_input(self, x: Any, layout: str, **sizes: int) -> None:
        """Raise ValueError naming the layer when ``x`` does not match ``layout``.

        Args:
            x: the input array.
            layout: axis letters, e.g. ``"NCHW"`` or ``"NF"``.
            sizes: required sizes for some axes, e.g. ``C=3``.
        """
        shape = getattr(x, "shape", None)
        ok = shape is not None and len(shape) == len(layout)
        if ok:
            for axis, size in sizes.items():
                if shape[layout.index(axis)] != size:
                    ok = False
        if not ok:
            expected = "(" + ", ".join(str(sizes.get(a, a)) for a in layout) + ")"
            got = _shape_str(shape) if shape is not None else type(x).__name__
            raise ValueError(f"{self!r}: expected input of shape {expected}, got {got}")


@dataclass
class Trace:
    """What one forward (and optionally backward) pass through a Sequential saw.

    Every array is a host ``numpy.ndarray`` copy, so later passes (and in-place
    layers such as ``ReLU(inplace=True)``) cannot change it.

    Attributes:
        outputs: each layer's output, keyed by the layer's dotted name (``"0"``,
            ``"1"``, ... for a flat model; ``"block.0"`` inside a nested Sequential),
            in forward order; shapes ``(N, ...)``.
        grads: with a target, ``dL/d(output)`` of each layer (same keys and shapes),
            where L is the mean softmax cross-entropy over the batch; else None.
        param_grads: with a target, ``dL/dθ`` of every parameter by dotted name; else None.
        input_grad: with a target, ``dL/dx`` for the input; else None.
        loss: with a target, the mean loss as a Python float; else None.
    """

    outputs: OrderedDict[str, np.ndarray]
    grads: OrderedDict[str, np.ndarray] | None = None
    param_grads: OrderedDict[str, np.ndarray] | None = None
    input_grad: np.ndarray | None = None
    loss: float | None = None


def _host_copy(a: Any) -> np.ndarray:
    host = to_host(a)
    return host.copy() if host is a else host


def _holds_parameters(module: Module) -> bool:
    """Whether ``module`` or a descendant registers a Parameter (cheap for leaf layers)."""
    return bool(module._parameters) or any(_holds_parameters(c) for c in module._modules.values())


class Sequential(Module):
    """A chain of modules; child ``i`` is registered under the name ``str(i)``.

    ``forward`` runs the children in order, ``backward`` in reverse order, with one
    exception that changes no number: a ``ReLU`` directly followed by a ``MaxPool2D``
    runs after the pooling instead of before it. The maximum of a window commutes with
    ``max(·, 0)``, and the gradient reaches the same element (the window's first
    maximum, if it is positive; no element otherwise), so outputs and gradients are the
    same, while the ReLU passes over a quarter of the data (for 2×2 windows). Each
    layer's own ``forward`` and :meth:`trace` still run in the written order.
    """

    def __init__(self, *modules: Module):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential argument {i} is {type(module).__name__}, not a Module")
            setattr(self, str(i), module)

    def _execution_order(self) -> list[Module]:
        """The children in the order forward runs them: each ReLU → MaxPool2D pair swapped."""
        from cnnx.nn.activation import ReLU  # layers' modules import this one
        from cnnx.nn.pooling import MaxPool2D

        order = list(self._modules.values())
        for i in range(len(order) - 1):
            if type(order[i]) is ReLU and type(order[i + 1]) is MaxPool2D:
                order[i], order[i + 1] = order[i + 1], order[i]
        return order

    def forward(self, x: Any) -> Any:
        for module in self._execution_order():
            x = module.forward(x)
        return x

    def backward(self, gy: Any) -> Any:
        with device_of(gy):  # as forward: compute where the gradient lives
            for module in reversed(self._execution_order()):
                gy = module.backward(gy)
        return gy

    def backward_params(self, gy: Any) -> None:
        """Backward pass that stops at the first module holding parameters.

        Modules before it get no gradient (nothing below needs one), and that
        module itself only accumulates its parameter gradients.
        """
        modules = self._execution_order()
        first = next((i for i, m in enumerate(modules) if _holds_parameters(m)), None)
        if first is None:
            return
        with device_of(gy):
            for module in reversed(modules[first + 1 :]):
                gy = module.backward(gy)
            modules[first].backward_params(gy)

    # -- looking inside --------------------------------------------------------------

    def layers(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Yield ``(dotted_name, layer)`` in forward order; nested Sequentials are expanded."""
        for name, module in self._modules.items():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(module, Sequential):
                yield from module.layers(full)
            else:
                yield full, module

    def trace(self, x: Any, target: Any = None) -> Trace:
        """One forward pass (and, given ``target``, one backward pass) that records every layer.

        Runs in eval mode (dropout off, batch norm on running statistics) and restores
        the previous mode afterwards. Parameters' ``.grad`` arrays are left exactly as
        they were: the backward pass accumulates into fresh arrays, which are returned
        as ``param_grads``.

        Args:
            x: ``(N, ...)`` input on the model's device or the host (it is moved).
            target: None for a forward pass only; else ``(N,)`` integer labels (or an
                ``(N, classes)`` probability matrix) for the mean softmax cross-entropy.

        Returns:
            A :class:`Trace` of host copies.
        """
        from cnnx.nn.loss import SoftmaxCrossEntropy

        dev = self.device
        layers = list(self.layers())
        was_training = self.training
        self.eval()
        params = self.parameters() if target is not None else []
        saved_grads = [p.grad for p in params]
        try:
            with dev, ignore_float_errors():
                h = dev.asarray(x)
                outputs: OrderedDict[str, np.ndarray] = OrderedDict()
                for name, layer in layers:
                    h = layer.forward(h)
                    outputs[name] = _host_copy(h)  # before an in-place layer overwrites h
                if target is None:
                    return Trace(outputs)
                for p in params:
                    p.grad = get_array_module(p.data).zeros_like(p.data)
                loss_fn = SoftmaxCrossEntropy()
                loss = float(loss_fn(h, dev.asarray(target)))
                gy = loss_fn.backward()
                grads: OrderedDict[str, np.ndarray] = OrderedDict()
                for name, layer in reversed(layers):
                    grads[name] = _host_copy(gy)  # before an in-place backward overwrites gy
                    gy = layer.backward(gy)
                grads = OrderedDict((name, grads[name]) for name, _ in layers)
                param_grads = OrderedDict((p.name, _host_copy(p.grad)) for p in params)
                return Trace(outputs, grads, param_grads, _host_copy(gy), loss)
        finally:
            for p, g in zip(params, saved_grads, strict=True):
                p.grad = g
            self.train(was_training)

    def activations(self, x: Any, batch_size: int | None = None) -> OrderedDict[str, np.ndarray]:
        """Each layer's output for input ``x``, in eval mode, as host arrays.

        Args:
            x: ``(N, ...)`` input (host or device).
            batch_size: run this many samples per forward pass (None: all at once);
                the outputs are concatenated, so the result is the same.

        Returns:
            ``{dotted layer name: (N, ...) numpy array}`` in forward order.
        """
        n = int(x.shape[0])
        step = n if batch_size is None else max(1, int(batch_size))
        parts = [self.trace(x[i : i + step]).outputs for i in range(0, max(n, 1), step)]
        if len(parts) == 1:
            return parts[0]
        return OrderedDict(
            (name, np.concatenate([part[name] for part in parts])) for name in parts[0]
        )

    def gradients(self, x: Any, target: Any) -> OrderedDict[str, tuple[np.ndarray, np.ndarray]]:
        """Each layer's ``(output, dL/d(output))`` for ``x`` and ``target``, as host arrays.

        L is the mean softmax cross-entropy over the batch; one forward and one backward
        pass in eval mode; parameters' ``.grad`` are left untouched (see :meth:`trace`).
        """
        t = self.trace(x, target)
        assert t.grads is not None
        return OrderedDict((name, (t.outputs[name], t.grads[name])) for name in t.outputs)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())
