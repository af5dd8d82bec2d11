"""The end-to-end race: ``dlcore run`` against plain PyTorch and Keras scripts."""

from benchmarks.race.runner import run
from benchmarks.race.tasks import TASKS, Shrink, parse_tasks

__all__ = ["TASKS", "Shrink", "parse_tasks", "run"]
