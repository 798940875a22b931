"""Looking inside a network: health reports, per-epoch statistics, step-by-step traces.

- :func:`health_report` — per-layer output statistics, dead and saturated units,
  per-parameter gradient norms and update-to-weight ratios, and warnings in words.
- :class:`TrainingStats` — the same, cheaply, once per epoch inside ``cnnx.fit(stats=...)``.
- ``model.activations(x)`` / ``model.gradients(x, y)`` / ``model.trace(x, y)`` live on
  :class:`cnnx.nn.Sequential` itself.
"""

from cnnx.inspect.health import (
    HealthReport,
    LayerHealth,
    ParamHealth,
    format_report,
    health_report,
)
from cnnx.inspect.stats import TrainingStats

__all__ = [
    "HealthReport",
    "LayerHealth",
    "ParamHealth",
    "TrainingStats",
    "format_report",
    "health_report",
]
