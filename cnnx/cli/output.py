"""A run's output directory, as the CLI uses it (it lives in :mod:`cnnx.runs.directory`)."""

from cnnx.runs.directory import BEST, CONFIG, LAST, METRICS, RunDirectory

__all__ = ["BEST", "CONFIG", "LAST", "METRICS", "RunDirectory"]
