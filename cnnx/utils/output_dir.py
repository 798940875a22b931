"""Claiming an output directory without clobbering what is already there."""

from __future__ import annotations

from pathlib import Path

from cnnx.errors import OutputExistsError


def claim_output_dir(path: str | Path, *, reuse: bool, how_to_reuse: str) -> Path:
    """Make ``path`` ready to receive a run's files, and return it.

    A missing or empty directory is created or used. A non-empty one is refused
    unless ``reuse`` (the caller asked to overwrite or resume what is there).

    Args:
        path: the directory (``--output-dir``).
        reuse: whether the caller may write into a non-empty directory.
        how_to_reuse: the flags that would allow it, for the message, e.g.
            ``"pass --overwrite to replace that run, or --resume it"``.

    Raises:
        OutputExistsError: ``path`` is a file, or a non-empty directory and not ``reuse``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"--output-dir {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not reuse:
        held = ", ".join(sorted(p.name for p in path.iterdir())[:5])
        raise OutputExistsError(
            f"--output-dir {path} already exists and is not empty ({held}); choose a new "
            f"directory, {how_to_reuse}"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path
