"""Small helpers shared across cnnx: atomic file writes and a terminal progress bar."""

from cnnx.utils.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from cnnx.utils.progress import Progress

__all__ = ["Progress", "atomic_write", "atomic_write_bytes", "atomic_write_text"]
