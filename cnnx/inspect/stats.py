"""Per-epoch network statistics for ``cnnx.fit(..., stats=...)``.

Once per epoch, on a fixed probe of training samples (at most ``max_samples``),
one forward and one backward pass in eval mode record each layer's output mean and
standard deviation, its dead and saturated units, and each parameter's gradient
norm; the weights are compared with a copy taken when the epoch started, giving how
far the epoch moved them relative to their size (``update_ratio``). Nothing of this
touches the training step itself, so with stats off the loop is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnx.backends import to_host
from cnnx.inspect.health import _norm, layer_statistics
from cnnx.nn.module import Sequential

DEFAULT_PROBE = 512


class TrainingStats:
    """Collects one JSON-ready dict of statistics per epoch.

    Args:
        X: ``(N, ...)`` training inputs; the first ``max_samples`` are the probe.
        y: ``(N,)`` integer labels.
        max_samples: probe size (the 6×6 digits fit entirely).

    ``fit`` calls :meth:`begin_epoch` before an epoch's first step and
    :meth:`end_epoch` after its last; the dict lands in ``EpochRecord.stats``::

        {"loss": 0.61,
         "layers": {"0": {"mean": .., "std": .., "dead": [..] | None,
                          "saturated": [..] | None}, ...},
         "params": {"0.weight": {"grad_norm": .., "weight_norm": .., "update_ratio": ..}}}
    """

    def __init__(self, X: Any, y: Any, max_samples: int = DEFAULT_PROBE):
        if max_samples < 1:
            raise ValueError(f"TrainingStats max_samples must be positive, got {max_samples!r}")
        self.X = X[:max_samples]
        self.y = y[:max_samples]
        self._start: dict[str, np.ndarray] = {}

    def begin_epoch(self, model: Sequential) -> None:
        """Remember the weights (host copies) the epoch starts from."""
        self._start = {name: to_host(p.data).copy() for name, p in model.named_parameters()}

    def end_epoch(self, model: Sequential) -> dict[str, Any]:
        """Statistics of the model as the epoch left it."""
        layers, grads, loss, _ = layer_statistics(model, self.X, self.y, batch_size=len(self.y))
        out_layers = {}
        for r in layers:
            entry: dict[str, Any] = {"mean": _round(r.mean), "std": _round(r.std)}
            if r.dead is not None:
                entry["dead"] = r.dead
            if r.saturated is not None:
                entry["saturated"] = r.saturated
            if r.non_finite:
                entry["non_finite"] = True
            out_layers[r.name] = entry
        out_params = {}
        for name, p in model.named_parameters():
            weights = to_host(p.data)
            weight_norm = _norm(weights)
            entry = {"weight_norm": _round(weight_norm)}
            if grads is not None:
                entry["grad_norm"] = _round(_norm(grads[name]))
            if name in self._start and weight_norm > 0:
                entry["update_ratio"] = _round(_norm(weights - self._start[name]) / weight_norm)
            out_params[name] = entry
        return {"loss": _round(loss), "layers": out_layers, "params": out_params}


def _round(value: float | None) -> float | None:
    """Six significant digits: enough to plot, small in metrics.jsonl."""
    if value is None or not np.isfinite(value):
        return None  # JSON has no NaN; the layer's "non_finite" flag says what happened
    return float(f"{value:.6g}")
