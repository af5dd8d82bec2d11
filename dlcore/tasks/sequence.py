"""Per-step classification of sequences: tagging, one-to-many generation, language models.

The model maps a batch ``x`` to logits ``[B, T, K]``; targets ``y`` are int ``[B, T]`` with
``-1`` where a step does not count (padding). Every metric is a sum over *counted steps*,
and ``count`` is their number, so means are per step (per token, per character):

    w_{bt} = [y_{bt} >= 0] · mask_b,     loss = Σ w_{bt} CE_{bt} / Σ w_{bt}
    bits_per_char = loss / ln 2

(``mask`` ``[B]`` marks the padded examples of an evaluation batch.)
"""

import dataclasses
import math
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from pydantic import Field

from dlcore.data.needs import Need
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.tasks.base import init_state
from dlcore.tasks.context import BuildContext, TaskSection

STEP_LABELS = Need("y", ("labels",), "integer labels per step [T] (-1 = not counted)", (1,))


def step_weights(y_BxT: jax.Array, mask_B: jax.Array | None = None) -> jax.Array:
    """1.0 for steps that count (target >= 0 in an unpadded example), else 0.0; ``[B, T]``."""
    w_BxT = (y_BxT >= 0).astype(jnp.float32)
    if mask_B is not None:
        w_BxT = w_BxT * mask_B[:, None].astype(jnp.float32)
    return w_BxT


def per_step_sums(
    logits_BxTxK: jax.Array, y_BxT: jax.Array, w_BxT: jax.Array, bits_metric: str | None
) -> tuple[jax.Array, Metrics]:
    """Mean cross-entropy over counted steps, and the metric sums (see module docstring)."""
    if logits_BxTxK.shape[:2] != y_BxT.shape:
        raise ValueError(
            f"per-step logits must be [B, T, K] with [B, T] = targets' shape {y_BxT.shape}; "
            f"got {logits_BxTxK.shape} (use model.readout = 'all')"
        )
    ce_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxK, jnp.maximum(y_BxT, 0))
    correct_BxT = (jnp.argmax(logits_BxTxK, axis=-1) == y_BxT).astype(jnp.float32)
    count = jnp.sum(w_BxT)
    loss_sum = jnp.sum(ce_BxT * w_BxT)
    sums = {"loss": loss_sum, "accuracy": jnp.sum(correct_BxT * w_BxT), "count": count}
    if bits_metric is not None:
        sums[bits_metric] = loss_sum / math.log(2.0)
    return loss_sum / jnp.maximum(count, 1.0), sums


def sequence_metric_modes(bits_metric: str | None) -> dict[str, Mode]:
    modes: dict[str, Mode] = {"loss": "min", "accuracy": "max"}
    if bits_metric is not None:
        modes[bits_metric] = "min"
    return modes


@dataclasses.dataclass(frozen=True)
class TaggingTask(TaskDefaults):
    """Per-step softmax cross-entropy on ``[B, T]`` integer targets (``-1`` = not counted).

    Covers many-to-many tagging, one-to-many generation (input at t = 0 only) and
    language modelling on shuffled windows from a zero state.

    Attributes:
      model: called as ``model(x, train=bool) -> [B, T, K]`` logits.
      optimizer: the optax chain.
      bits_metric: also report the loss in bits under this name (e.g. "bits_per_char").
      default_metric: validation metric that picks the best checkpoint.

    Example:
      >>> task = TaggingTask(SequenceModel(7, vocab_size=2, readout="all"), optax.adam(1e-2))
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_BxT, "y": y_BxT})
      >>> state, sums = jax.jit(task.train_step)(state, {"x": x_BxT, "y": y_BxT})
    """

    model: nn.Module
    optimizer: optax.GradientTransformation
    bits_metric: str | None = None
    default_metric: str = "accuracy"

    @property
    def metric_modes(self) -> dict[str, Mode]:
        return sequence_metric_modes(self.bits_metric)

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        return init_state(self.model, self.optimizer, rng, batch["x"])

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        w_BxT = step_weights(batch["y"], batch.get("mask"))
        rngs = {"dropout": state.step_key("dropout")}

        def objective(params):
            logits = self.model.apply({"params": params}, batch["x"], train=True, rngs=rngs)
            return per_step_sums(logits, batch["y"], w_BxT, self.bits_metric)

        grads, sums = jax.grad(objective, has_aux=True)(state.params)
        return apply_gradients(state, self.optimizer, grads).replace(step=state.step + 1), sums

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        logits = self.model.apply({"params": state.params}, batch["x"], train=False)
        w_BxT = step_weights(batch["y"], batch.get("mask"))
        return per_step_sums(logits, batch["y"], w_BxT, self.bits_metric)[1]


class TaggingConfig(TaskSection):
    """Per-step softmax cross-entropy on [T] integer targets (-1 = padding, not counted).

    Many-to-many tagging, one-to-many generation, or a language model on shuffled windows.
    """

    name: Literal["tagging"] = "tagging"
    bits_metric: str | None = Field(
        None, description="also report the loss in bits under this name, e.g. bits_per_char"
    )

    def needs(self) -> tuple[Need, ...]:
        return (STEP_LABELS,)

    def build(self, ctx: BuildContext) -> TaggingTask:
        model = ctx.model(ctx.data.num_classes)
        default = self.bits_metric or "accuracy"
        return TaggingTask(model, ctx.optimizer(), self.bits_metric, default_metric=default)
