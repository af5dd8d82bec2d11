"""The run directory: its files and the errors a run can end with (checkpoints are
``dlcore.runs.checkpoint``, kept out of this import: orbax is slow to load)."""

from dlcore.runs.errors import DivergedError, RunDirError, RunIOError
from dlcore.runs.run_dir import RunDir, default_run_path, find_runs

__all__ = [
    "DivergedError",
    "RunDir",
    "RunDirError",
    "RunIOError",
    "default_run_path",
    "find_runs",
]
