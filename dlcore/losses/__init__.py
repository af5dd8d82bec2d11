"""Per-example losses, their masked reduction, and the LOSSES registry."""

from dlcore.losses.classification import (
    binary_cross_entropy,
    binary_hinge,
    multiclass_hinge,
    softmax_cross_entropy,
    sparsemax_loss,
    zero_one_loss,
)
from dlcore.losses.metric_learning import contrastive_loss, cosine_embedding_loss, triplet_loss
from dlcore.losses.multilabel import multilabel_sigmoid_loss, multilabel_sparsemax_loss
from dlcore.losses.multitask import MultiTaskLoss
from dlcore.losses.reduce import (
    ELEMENT_REDUCTIONS,
    ElementReduction,
    Reduction,
    reduce_elements,
    reduce_loss,
)
from dlcore.losses.registry import LOSSES, TASK_LOSSES, LossOptionError, bind_loss, get_loss
from dlcore.losses.regression import (
    huber_loss,
    mean_absolute_error,
    mean_bias_error,
    mean_squared_error,
    smooth_l1_loss,
    squared_error,
)

__all__ = [
    "ELEMENT_REDUCTIONS",
    "ElementReduction",
    "LOSSES",
    "TASK_LOSSES",
    "LossOptionError",
    "MultiTaskLoss",
    "Reduction",
    "binary_cross_entropy",
    "bind_loss",
    "binary_hinge",
    "contrastive_loss",
    "cosine_embedding_loss",
    "get_loss",
    "huber_loss",
    "mean_absolute_error",
    "mean_bias_error",
    "mean_squared_error",
    "multiclass_hinge",
    "multilabel_sigmoid_loss",
    "multilabel_sparsemax_loss",
    "reduce_elements",
    "reduce_loss",
    "smooth_l1_loss",
    "softmax_cross_entropy",
    "sparsemax_loss",
    "squared_error",
    "triplet_loss",
    "zero_one_loss",
]
