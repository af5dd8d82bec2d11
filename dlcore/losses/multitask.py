"""A multi-task loss: a weighted sum of per-task losses over the heads of one model."""

import dataclasses
from collections.abc import Callable, Mapping

import jax

PerExample = Callable[[jax.Array, jax.Array], jax.Array]  # (pred, target) -> [B]


@dataclasses.dataclass(frozen=True)
class MultiTaskLoss:
    """L_i = sum_k alpha_k L_k(pred_k, target_k), per example (hard parameter sharing).

    Predictions and targets are dicts keyed by task name, as produced by
    :class:`dlcore.models.MultiHeadMLP`; the result is ``[B]``, so it reduces with
    :func:`dlcore.losses.reduce_loss` (and plugs into ``SupervisedTask`` as its loss) like
    any single-task loss.

    Attributes:
      losses: per-example loss of each task, by task name.
      weights: alpha_k of each task, by the same names.

    Example:
      >>> import jax.numpy as jnp
      >>> from dlcore.losses import softmax_cross_entropy, squared_error
      >>> loss = MultiTaskLoss(
      ...     losses={"digit": softmax_cross_entropy, "size": squared_error},
      ...     weights={"digit": 1.0, "size": 0.5})
      >>> preds = {"digit": jnp.zeros((2, 3)), "size": jnp.ones((2, 1))}
      >>> targets = {"digit": jnp.array([0, 2]), "size": jnp.zeros((2, 1))}
      >>> loss(preds, targets).shape
      (2,)
    """

    losses: Mapping[str, PerExample]
    weights: Mapping[str, float]

    def __post_init__(self):
        if set(self.losses) != set(self.weights) or not self.losses:
            raise ValueError(
                "multi-task losses and weights must name the same non-empty set of tasks; got "
                f"losses {sorted(self.losses)} and weights {sorted(self.weights)}"
            )

    def per_task(
        self, preds: Mapping[str, jax.Array], targets: Mapping[str, jax.Array]
    ) -> dict[str, jax.Array]:
        """The unweighted per-example loss ``[B]`` of each task (for logging)."""
        for what, tree in (("predictions", preds), ("targets", targets)):
            missing = sorted(set(self.losses) - set(tree))
            if missing:
                raise ValueError(f"multi-task {what} lack tasks {missing}; got {sorted(tree)}")
        return {name: fn(preds[name], targets[name]) for name, fn in self.losses.items()}

    def __call__(
        self, preds: Mapping[str, jax.Array], targets: Mapping[str, jax.Array]
    ) -> jax.Array:
        per_task = self.per_task(preds, targets)
        return sum(self.weights[name] * loss_B for name, loss_B in sorted(per_task.items()))
