"""The run directory: its files and the errors a run can end with (checkpoints are
``dlcore.runs.checkpoint``, kept out of this import: orbax is slow to load)."""

from dlcore.runs.compare import compare_runs
from dlcore.runs.errors import DivergedError, RunDirError, RunIOError
from dlcore.runs.run_dir import RunDir, default_run_path, find_runs
from dlcore.runs.tensorboard import EventLog

__all__ = [
    "DivergedError",
    "EventLog",
    "RunDir",
    "RunDirError",
    "RunIOError",
    "compare_runs",
    "default_run_path",
    "find_runs",
]
