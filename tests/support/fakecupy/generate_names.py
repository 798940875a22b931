"""Regenerate ``cupy_names.json``: the names real CuPy has, for the stand-in to check against.

Run with the real CuPy importable (it imports without a GPU) and the stand-in NOT
on the import path::

    python tests/support/fakecupy/generate_names.py

The stand-in (``tests/support/fakecupy/cupy``) refuses every attribute that is not
listed here, so tests cannot pass by using something CuPy does not have.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    import cupy
    import cupy.cuda
    import cupy.cuda.runtime
    import cupy.random

    if "stand-in" in (cupy.__doc__ or ""):
        raise SystemExit("the stand-in is on the import path; run with the real CuPy")
    names = {
        "cupy_version": cupy.__version__,
        "cupy": sorted(dir(cupy)),
        "cupy.ndarray": sorted(dir(cupy.ndarray)),
        "cupy.cuda": sorted(dir(cupy.cuda)),
        "cupy.cuda.Device": sorted(dir(cupy.cuda.Device)),
        "cupy.cuda.runtime": sorted(dir(cupy.cuda.runtime)),
        "cupy.random": sorted(dir(cupy.random)),
    }
    out = HERE / "cupy_names.json"
    out.write_text(json.dumps(names, indent=0) + "\n")
    counts = ", ".join(f"{k}: {len(v)}" for k, v in names.items() if k != "cupy_version")
    print(f"wrote {out} from CuPy {cupy.__version__} ({counts})")


if __name__ == "__main__":
    main()
