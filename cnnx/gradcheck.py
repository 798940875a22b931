"""Numerical gradient checking: compare a layer's backward with central differences.

Students use this to debug their own layers, so it is public API: write a
Module with ``forward``/``backward``, call ``gradcheck(layer, x)``, and read the
worst relative error per tensor.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from cnnx.backends import device_of, to_host
from cnnx.nn.loss import SoftmaxCrossEntropy
from cnnx.nn.module import Module


def _generators(module: Any) -> list[np.random.Generator]:
    """Every numpy Generator a module (or its descendants) draws from, e.g. Dropout's."""
    found = []
    modules = [m for _, m in module.named_modules()] if isinstance(module, Module) else [module]
    for m in modules:
        for value in vars(m).values():
            if isinstance(value, np.random.Generator):
                found.append(value)
    return found


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``max|a − n| / max(max|a|, max|n|)`` over a tensor (0 when both are all zero).

    Normalising by the tensor's largest gradient, not element by element, keeps
    entries whose true gradient is exactly zero from dividing rounding noise by
    nothing, while a wrong backward still shows up as an error of order 1.
    """
    scale = max(
        float(np.max(np.abs(analytic), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0))
    )
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(analytic - numeric))) / scale


def gradcheck(
    module: Any,
    x: Any,
    target: Any = None,
    *,
    eps: float = 1e-6,
    seed: int = 0,
) -> dict[str, float]:
    """Check ``module.backward`` against float64 central differences.

    The module is deep-copied and cast to float64 first (``Module.to(dtype=...)``),
    so the caller's module is left untouched. For an ordinary layer the scalar
    being differentiated is ``L = sum(forward(x) · R)`` with a fixed random ``R``
    (so every output element matters), and ``backward(R)`` gives the analytic
    gradients. For a loss (``target`` given, e.g. :class:`SoftmaxCrossEntropy`),
    ``L = forward(x, target)`` and ``backward()`` is used.

    Random generators inside the module (Dropout's) are rewound before every
    forward pass, so each evaluation sees the same mask.

    Args:
        module: a :class:`~cnnx.nn.Module` or a loss object.
        x: input array (any float dtype, host or device).
        target: labels or target matrix for a loss; None for a layer.
        eps: finite-difference step.
        seed: seed of the random projection ``R``.

    Returns:
        ``{"input": err, "<param name>": err, ...}``: the worst relative error
        (:func:`relative_error`) of each tensor's analytic gradient.
    """
    mod = copy.deepcopy(module)
    if isinstance(mod, Module):
        mod.to(dtype=np.float64)
    dev = device_of(x)
    x64 = dev.asarray(to_host(x), dtype=np.float64).copy()
    gens = _generators(mod)
    gen_states = [g.bit_generator.state for g in gens]
    is_loss = target is not None or isinstance(mod, SoftmaxCrossEntropy)
    params = list(mod.named_parameters()) if isinstance(mod, Module) else []

    def forward(inp: Any) -> Any:
        for g, st in zip(gens, gen_states, strict=True):
            g.bit_generator.state = st
        return mod(inp, target) if is_loss else mod(inp)

    out = forward(x64)
    if is_loss:
        projection = None
    else:
        rng = np.random.default_rng(seed)
        projection = dev.asarray(rng.standard_normal(tuple(out.shape)))

    def scalar(inp: Any) -> float:
        y = forward(inp)
        if is_loss:
            return float(y)
        return float((y * projection).sum())

    for _, p in params:
        p.zero_grad()
    forward(x64)
    gx = mod.backward() if is_loss else mod.backward(projection)
    analytic = {"input": to_host(gx)}
    analytic.update({name: to_host(p.grad) for name, p in params})

    tensors = [("input", x64)] + [(name, p.data) for name, p in params]
    errors: dict[str, float] = {}
    for name, tensor in tensors:
        numeric = np.zeros(tuple(tensor.shape), dtype=np.float64)
        flat_view = numeric.reshape(-1)
        for i, idx in enumerate(np.ndindex(*tensor.shape)):
            original = float(tensor[idx])
            tensor[idx] = original + eps
            plus = scalar(x64)
            tensor[idx] = original - eps
            minus = scalar(x64)
            tensor[idx] = original
            flat_view[i] = (plus - minus) / (2.0 * eps)
        errors[name] = relative_error(analytic[name], numeric)
    return errors
