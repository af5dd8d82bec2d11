"""Per-example losses, their masked reduction, and the LOSSES registry."""

from dlcore.losses.classification import (
    binary_cross_entropy,
    binary_hinge,
    multiclass_hinge,
    softmax_cross_entropy,
    sparsemax_loss,
    zero_one_loss,
)
from dlcore.losses.metric_learning import contrastive_loss, triplet_loss
from dlcore.losses.multitask import MultiTaskLoss
from dlcore.losses.reduce import Reduction, reduce_loss
from dlcore.losses.registry import LOSSES, TASK_LOSSES, get_loss
from dlcore.losses.regression import (
    mean_absolute_error,
    mean_bias_error,
    mean_squared_error,
    squared_error,
)

__all__ = [
    "LOSSES",
    "TASK_LOSSES",
    "MultiTaskLoss",
    "Reduction",
    "binary_cross_entropy",
    "binary_hinge",
    "contrastive_loss",
    "get_loss",
    "mean_absolute_error",
    "mean_bias_error",
    "mean_squared_error",
    "multiclass_hinge",
    "reduce_loss",
    "softmax_cross_entropy",
    "sparsemax_loss",
    "squared_error",
    "triplet_loss",
    "zero_one_loss",
]
