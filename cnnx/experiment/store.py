"""An experiment's output directory: one JSON file per finished run, and the grid it ran.

Layout::

    <output-dir>/
      experiment.json          the experiment (configurations, seeds) last run here
      runs/<config>__seed<k>.json   one per finished run, written when it finishes
      runs.csv, summary.md, curves.csv, loss_curves.png, accuracy.png   (report.py)

Every file is written atomically, so an interrupted experiment leaves complete run
files only, and ``--resume`` can trust each one it finds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cnnx.errors import CnnxError
from cnnx.experiment.grid import Experiment, RunConfig
from cnnx.experiment.runner import RunResult
from cnnx.utils.atomic import atomic_write_text
from cnnx.utils.output_dir import DirectoryLock, check_output_dir

RUNS_DIR = "runs"
EXPERIMENT_FILE = "experiment.json"
RUNS_CSV = "runs.csv"
SUMMARY_MD = "summary.md"
CURVES_CSV = "curves.csv"
LOSS_PNG = "loss_curves.png"
ACCURACY_PNG = "accuracy.png"
REPORT_FILES = (EXPERIMENT_FILE, RUNS_CSV, SUMMARY_MD, CURVES_CSV, LOSS_PNG, ACCURACY_PNG)
_RUN_FILE = re.compile(r"^.+__seed\d+\.json$")


class RunFileError(CnnxError):
    """A run file cannot be read, or describes a different configuration than the grid's."""


def run_file_name(config: RunConfig, seed: int) -> str:
    return f"{config.file_stem}__seed{seed}.json"


class ExperimentDirectory:
    """Reads and writes the files of one experiment directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.runs_dir = self.path / RUNS_DIR
        self.lock = DirectoryLock(self.path, "experiment directory")

    @classmethod
    def prepare(cls, path: str | Path, *, resume: bool, overwrite: bool) -> ExperimentDirectory:
        """Open ``path`` for an experiment, following the same rule as ``cnnx train``.

        A missing or empty directory is created/used. A non-empty one is refused
        unless ``resume`` (keep its finished runs and skip them) or ``overwrite``
        (delete the files an experiment writes - run files and reports - and start
        again; other files are left alone). The directory is locked until
        :meth:`close` (or the process ends): a second process is refused.

        Raises:
            OutputExistsError: the directory holds files and neither flag is set, or
                the path is a file.
            RunLockedError: another process uses the directory.
            ValueError: both flags are set.
        """
        if resume and overwrite:
            raise ValueError("--resume keeps finished runs and --overwrite deletes them; pick one")
        path = Path(path)
        how = (
            "pass --resume to continue the experiment there, or --overwrite to replace its results"
        )
        check_output_dir(path, reuse=resume or overwrite, how_to_reuse=how)
        path.mkdir(parents=True, exist_ok=True)
        directory = cls(path)
        directory.lock.acquire()
        try:
            # Again, now that no other process can change it.
            check_output_dir(path, reuse=resume or overwrite, how_to_reuse=how)
            directory.runs_dir.mkdir(parents=True, exist_ok=True)
        except BaseException:
            directory.close()
            raise
        if overwrite:
            for name in REPORT_FILES:
                (path / name).unlink(missing_ok=True)
            for run_file in directory.runs_dir.iterdir():
                if _RUN_FILE.match(run_file.name):
                    run_file.unlink()
        return directory

    def close(self) -> None:
        """Release the directory's lock."""
        self.lock.release()

    def run_path(self, config: RunConfig, seed: int) -> Path:
        return self.runs_dir / run_file_name(config, seed)

    def write_experiment(self, experiment: Experiment, device: str) -> None:
        data = {
            "name": experiment.name,
            "description": experiment.description,
            "seeds": list(experiment.seeds),
            "device": device,
            "configs": [c.to_dict() for c in experiment.configs],
        }
        atomic_write_text(self.path / EXPERIMENT_FILE, json.dumps(data, indent=2) + "\n")

    def save_run(self, result: RunResult) -> Path:
        """Write one finished run as ``runs/<config>__seed<k>.json`` (atomically)."""
        target = self.run_path(result.config, result.seed)
        atomic_write_text(target, json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
        return target

    def load_run(self, config: RunConfig, seed: int) -> RunResult | None:
        """The saved result of ``(config, seed)``, or None if there is no run file.

        Raises:
            RunFileError: the file is unreadable, or it holds another configuration or
                seed (the grid was changed under the same name).
        """
        path = self.run_path(config, seed)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            result = RunResult.from_dict(data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunFileError(
                f"{path} is not a readable run record ({exc}); delete it to run it again"
            ) from None
        saved = result.config.to_dict()
        wanted = config.to_dict()
        if saved != wanted or result.seed != seed:
            changed = [k for k in wanted if saved.get(k) != wanted[k]]
            if result.seed != seed:
                changed.append("seed")
            detail = "; ".join(
                f"{k}: saved {saved.get(k)!r}, now {wanted.get(k)!r}" for k in changed[:3]
            )
            raise RunFileError(
                f"--resume: {path} was run with a different configuration ({detail}); use a "
                "new --output-dir, or --overwrite to discard the old results"
            )
        return result

    def stray_run_files(self, experiment: Experiment) -> list[Path]:
        """Run files in runs/ that belong to no (configuration, seed) of ``experiment``."""
        expected = {run_file_name(c, s) for c, s in experiment.runs()}
        return sorted(
            p for p in self.runs_dir.iterdir() if _RUN_FILE.match(p.name) and p.name not in expected
        )
