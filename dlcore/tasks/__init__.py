"""Tasks: what the generic loop trains (the interface is ``dlcore.engine.task.Task``)."""

from dlcore.engine.task import Batch, Metrics, Task, means
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.registry import TASKS, TaskEntry
from dlcore.tasks.supervised import SupervisedTask, accuracy, classification, regression

__all__ = [
    "TASKS",
    "Batch",
    "BuildContext",
    "Metrics",
    "SupervisedTask",
    "Task",
    "TaskEntry",
    "TaskSection",
    "accuracy",
    "classification",
    "means",
    "regression",
]
