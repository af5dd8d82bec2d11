"""Metric learning: train a model to embed examples so that same-class ones are close.

Pairs and triplets are mined inside each batch from its labels, with keys that depend only
on (seed, step), so no special data set is needed:

- ``contrastive``: every example is paired with a random partner of the batch;
  L = y d^2/2 + (1 - y) max(0, m - d)^2/2 with y = 1 for a same-class pair.
- ``cosine_embedding``: pairs as for ``contrastive``; L = 1 - cos for a same-class pair,
  max(0, cos - m) otherwise (PyTorch's CosineEmbeddingLoss).
- ``triplet``: every anchor gets a random same-class positive and a random other-class
  negative of the batch; L = max(0, d(a, p)^2 - d(a, n)^2 + m), or with ``distance =
  "euclidean"`` PyTorch's max(0, d(a, p) - d(a, n) + m), d(x, y) = ||x - y + eps||. Anchors
  without a positive or a negative in the batch are masked out.

The reported ``accuracy`` is 1-nearest-neighbour accuracy inside the batch (padding and the
example itself excluded), a direct measure of how well the embedding separates classes.
"""

from collections.abc import Mapping
from typing import Literal

import jax
import jax.numpy as jnp
from pydantic import Field

from dlcore.config.section import one_of
from dlcore.data.needs import Need
from dlcore.engine.state import apply_gradients
from dlcore.losses import TASK_LOSSES, bind_loss
from dlcore.losses.metric_learning import TRIPLET_DISTANCES
from dlcore.regularizers import PenaltySection
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.supervised import LABELS, SupervisedTask, checked_loss_options


def _pairwise_sq_dist(e_BxE: jax.Array) -> jax.Array:
    sq_B = jnp.sum(e_BxE * e_BxE, axis=1)
    return jnp.maximum(sq_B[:, None] + sq_B[None, :] - 2.0 * e_BxE @ e_BxE.T, 0.0)


def _random_pick(key: jax.Array, allowed_BxB: jax.Array) -> tuple[jax.Array, jax.Array]:
    """For each row, a uniformly random allowed column, and whether any was allowed."""
    scores_BxB = jnp.where(allowed_BxB, jax.random.uniform(key, allowed_BxB.shape), -1.0)
    return jnp.argmax(scores_BxB, axis=1), jnp.any(allowed_BxB, axis=1)


def mine_and_score(key, e_BxE, y_B, valid_B, loss: str, margin: float, options=None):
    """Per-example metric-learning loss ``[B]`` and its weights (0 where not defined);
    ``options`` are the loss's keyword options (``{"distance": "euclidean"}``)."""
    loss_fn = bind_loss(loss, {**(options or {}), "margin": margin})
    n = y_B.shape[0]
    same_BxB = (y_B[:, None] == y_B[None, :]) & valid_B[None, :] & valid_B[:, None]
    not_self_BxB = ~jnp.eye(n, dtype=bool)
    if loss in ("contrastive", "cosine_embedding"):
        partner_B, ok_B = _random_pick(key, not_self_BxB & valid_B[None, :] & valid_B[:, None])
        same_B = (y_B == y_B[partner_B]).astype(e_BxE.dtype)
        per_example = loss_fn(e_BxE, e_BxE[partner_B], same_B)
        return per_example, ok_B.astype(e_BxE.dtype)
    k_pos, k_neg = jax.random.split(key)
    positive_B, has_pos = _random_pick(k_pos, same_BxB & not_self_BxB)
    negative_B, has_neg = _random_pick(k_neg, ~same_BxB & valid_B[None, :] & valid_B[:, None])
    per_example = loss_fn(e_BxE, e_BxE[positive_B], e_BxE[negative_B])
    return per_example, (has_pos & has_neg).astype(e_BxE.dtype)


def nearest_neighbour_hits(e_BxE, y_B, valid_B) -> jax.Array:
    """1.0 where the closest other valid example has the same label; ``[B]``."""
    d_BxB = _pairwise_sq_dist(e_BxE)
    blocked = jnp.eye(y_B.shape[0], dtype=bool) | ~valid_B[None, :]
    nearest_B = jnp.argmin(jnp.where(blocked, jnp.inf, d_BxB), axis=1)
    return (y_B[nearest_B] == y_B).astype(e_BxE.dtype)


class EmbeddingTask(SupervisedTask):
    """A supervised task whose loss couples the examples of a batch (see module docstring).

    Build it with :func:`embedding`; ``loss`` holds the name and ``metrics`` is unused.
    """

    def _sums(self, key, pred_BxE, batch):
        valid_B = batch.get("mask", jnp.ones(pred_BxE.shape[0], pred_BxE.dtype)) > 0
        loss_name, margin, options = self.loss
        per_example, weight_B = mine_and_score(
            key, pred_BxE, batch["y"], valid_B, loss_name, margin, dict(options)
        )
        weight_B = weight_B * valid_B
        hits_B = nearest_neighbour_hits(pred_BxE, batch["y"], valid_B)
        count = jnp.sum(valid_B.astype(pred_BxE.dtype))
        sums = {
            "loss": jnp.sum(per_example * weight_B) * count / jnp.maximum(jnp.sum(weight_B), 1.0),
            "accuracy": jnp.sum(hits_B * valid_B),
            "count": count,
        }
        return sums, per_example, weight_B

    def train_step(self, state, batch):
        key = state.step_key("mining")

        def objective(params):
            pred, model_state = self._forward(state, params, batch["x"], train=True)
            sums, per_example, weight_B = self._sums(key, pred, batch)
            total = jnp.sum(per_example * weight_B) / jnp.maximum(jnp.sum(weight_B), 1.0)
            if self.penalty is not None:
                total = total + self.penalty(params)
            return total, (model_state, sums)

        grads, (model_state, sums) = jax.grad(objective, has_aux=True)(state.params)
        new_state = apply_gradients(state, self.optimizer, grads)
        return new_state.replace(step=state.step + 1, model_state=model_state), sums

    def eval_step(self, state, batch):
        pred, _ = self._forward(state, state.params, batch["x"], train=False)
        return self._sums(jax.random.PRNGKey(0), pred, batch)[0]


def embedding(
    model,
    optimizer,
    loss: str = "triplet",
    margin: float = 0.2,
    penalty=None,
    loss_options: Mapping[str, object] | None = None,
):
    """Metric learning with ``loss`` = ``contrastive``, ``cosine_embedding`` or ``triplet``
    (in-batch mining); ``loss_options`` are the loss's keyword options besides the margin
    (``{"distance": "euclidean", "eps": 1e-6}`` for the triplet loss)."""
    if loss not in TASK_LOSSES["embedding"]:
        raise ValueError(
            f"embedding loss must be one of {', '.join(TASK_LOSSES['embedding'])}; got {loss!r}"
        )
    options = tuple(sorted((k, v) for k, v in (loss_options or {}).items() if v is not None))
    bind_loss(loss, dict(options))  # an option the loss does not take fails here, not in jit
    return EmbeddingTask(
        model=model,
        loss=(loss, margin, options),
        metrics={},
        optimizer=optimizer,
        metric_modes={"loss": "min", "accuracy": "max"},
        default_metric="accuracy",
        penalty=penalty,
    )


class EmbeddingConfig(PenaltySection, TaskSection):
    """Metric learning: the model outputs ``embedding_dim`` numbers per example and is
    trained with in-batch ``contrastive`` or ``cosine_embedding`` pairs or ``triplet``
    triplets (see ``dlcore.tasks.embedding``); reports loss and in-batch 1-NN accuracy.
    ``distance`` applies to triplet, ``eps`` to triplet and cosine_embedding (unset: the
    loss's default)."""

    name: Literal["embedding"] = "embedding"
    loss: one_of(TASK_LOSSES["embedding"], "embedding loss") = "triplet"
    margin: float = Field(
        0.2,
        ge=0.0,
        description="hinge margin (PyTorch's defaults: CosineEmbeddingLoss 0, TripletMarginLoss 1)",
    )
    embedding_dim: int = Field(16, ge=1)
    distance: one_of(TRIPLET_DISTANCES, "triplet distance") | None = Field(
        None, description="triplet: 'squared' (no eps) or 'euclidean' ||a - b + eps|| (PyTorch)"
    )
    eps: float | None = Field(None, ge=0.0, description="triplet: 1e-6; cosine_embedding: 1e-12")

    def needs(self) -> tuple[Need, ...]:
        return (LABELS,)

    def build(self, ctx: BuildContext) -> EmbeddingTask:
        model = ctx.model(self.embedding_dim)
        options = checked_loss_options(self, ("distance", "eps"))
        penalty = self.make_penalty()
        return embedding(model, ctx.optimizer(), self.loss, self.margin, penalty, options)
