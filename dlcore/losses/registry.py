"""The loss registry: config names to per-example loss functions."""

import functools
import inspect
from collections.abc import Callable, Mapping

import jax

from dlcore.checks import check_choice
from dlcore.losses.classification import (
    binary_cross_entropy,
    binary_hinge,
    multiclass_hinge,
    softmax_cross_entropy,
    sparsemax_loss,
)
from dlcore.losses.metric_learning import contrastive_loss, cosine_embedding_loss, triplet_loss
from dlcore.losses.regression import (
    huber_loss,
    mean_absolute_error,
    mean_bias_error,
    mean_squared_error,
    smooth_l1_loss,
    squared_error,
)

# Every entry returns one value per example ([B]); reduce with reduce_loss. Prediction-target
# losses take (pred, target); "contrastive" and "cosine_embedding" take (emb_a, emb_b, same)
# and "triplet" takes (anchor, positive, negative).
LOSSES: dict[str, Callable[..., jax.Array]] = {
    "softmax_cross_entropy": softmax_cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "multiclass_hinge": multiclass_hinge,
    "binary_hinge": binary_hinge,
    "squared_error": squared_error,
    "mse": mean_squared_error,
    "mae": mean_absolute_error,
    "huber": huber_loss,
    "smooth_l1": smooth_l1_loss,
    "mean_bias_error": mean_bias_error,
    "sparsemax_loss": sparsemax_loss,
    "contrastive": contrastive_loss,
    "triplet": triplet_loss,
    "cosine_embedding": cosine_embedding_loss,
}


# The one table of which losses each kind of task may select; tasks validate their
# ``loss`` field against their row (``one_of(TASK_LOSSES["regression"], "loss")``).
TASK_LOSSES: dict[str, tuple[str, ...]] = {
    "classification": ("softmax_cross_entropy", "multiclass_hinge", "sparsemax_loss"),
    "binary_classification": ("binary_cross_entropy", "binary_hinge"),
    "regression": ("squared_error", "mse", "mae", "huber", "smooth_l1"),
    "embedding": ("contrastive", "triplet", "cosine_embedding"),
    "reconstruction": ("mse", "squared_error", "mae"),
}


def get_loss(name: str) -> Callable[..., jax.Array]:
    """Returns the loss registered under ``name``.

    Raises:
      ValueError: if ``name`` is not registered; the message lists the valid names.
    """
    check_choice(name, LOSSES, "loss")
    return LOSSES[name]


class LossOptionError(ValueError):
    """A keyword option given to a loss that does not take it; ``option`` names it."""

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(message)


def bind_loss(name: str, options: Mapping[str, object]) -> Callable[..., jax.Array]:
    """``LOSSES[name]`` with keyword ``options`` bound; an option given as None keeps the
    loss's own default, so a config section can offer every option of its losses.

    Example:
      >>> bind_loss("huber", {"delta": 2.0, "element_reduction": None}).keywords
      {'delta': 2.0}

    Raises:
      LossOptionError: when the loss does not take a given option (the message names the
        losses that do).
    """
    fn = get_loss(name)
    given = {key: value for key, value in options.items() if value is not None}
    for key in given:
        if key not in inspect.signature(fn).parameters:
            takers = [n for n, f in LOSSES.items() if key in inspect.signature(f).parameters]
            raise LossOptionError(
                key,
                f"the {name} loss takes no {key}; it applies to {', '.join(takers) or 'no loss'}",
            )
    return functools.partial(fn, **given)
