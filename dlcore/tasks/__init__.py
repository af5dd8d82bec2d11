"""Tasks: what the generic loop trains (see ``dlcore.tasks.base.Task``)."""

from dlcore.tasks.base import Batch, Metrics, Task, means
from dlcore.tasks.supervised import SupervisedTask, accuracy, classification, regression

__all__ = [
    "Batch",
    "Metrics",
    "SupervisedTask",
    "Task",
    "accuracy",
    "classification",
    "means",
    "regression",
]
