"""The loss registry: config names to per-example loss functions."""

from collections.abc import Callable

import jax

from dlcore.checks import check_choice
from dlcore.losses.classification import (
    binary_cross_entropy,
    binary_hinge,
    multiclass_hinge,
    softmax_cross_entropy,
    sparsemax_loss,
)
from dlcore.losses.metric_learning import contrastive_loss, triplet_loss
from dlcore.losses.regression import (
    mean_absolute_error,
    mean_bias_error,
    mean_squared_error,
    squared_error,
)

# Every entry returns one value per example ([B]); reduce with reduce_loss. Prediction-target
# losses take (pred, target); "contrastive" takes (emb_a, emb_b, same) and "triplet" takes
# (anchor, positive, negative).
LOSSES: dict[str, Callable[..., jax.Array]] = {
    "softmax_cross_entropy": softmax_cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "multiclass_hinge": multiclass_hinge,
    "binary_hinge": binary_hinge,
    "squared_error": squared_error,
    "mse": mean_squared_error,
    "mae": mean_absolute_error,
    "mean_bias_error": mean_bias_error,
    "sparsemax_loss": sparsemax_loss,
    "contrastive": contrastive_loss,
    "triplet": triplet_loss,
}


# The one table of which losses each kind of task may select; tasks validate their
# ``loss`` field against their row (``one_of(TASK_LOSSES["regression"], "loss")``).
TASK_LOSSES: dict[str, tuple[str, ...]] = {
    "classification": ("softmax_cross_entropy", "multiclass_hinge", "sparsemax_loss"),
    "binary_classification": ("binary_cross_entropy", "binary_hinge"),
    "regression": ("squared_error", "mse", "mae"),
    "embedding": ("contrastive", "triplet"),
    "reconstruction": ("mse", "squared_error", "mae"),
}


def get_loss(name: str) -> Callable[..., jax.Array]:
    """Returns the loss registered under ``name``.

    Raises:
      ValueError: if ``name`` is not registered; the message lists the valid names.
    """
    check_choice(name, LOSSES, "loss")
    return LOSSES[name]
