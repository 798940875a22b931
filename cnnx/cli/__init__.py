"""The ``cnnx`` command line (click)."""

from cnnx.cli.main import main

__all__ = ["main"]
