"""Truncated BPTT as a task: a long stream in chunks of k steps, the state carried across chunks.

The training split is consecutive k-step windows of one text. The loop reads it as B
parallel streams (``batch_order = "streams"``: batch n holds window n of every stream), so
each training step continues every stream where the previous step stopped:

    (L_n, carry_n) = f(θ, sg(carry_{n−1}), x_{nk : (n+1)k}),    θ ← update(θ, ∂L_n/∂θ)

The carry is ``state.extra["carry"]`` (one dict per layer), so it is checkpointed with the
parameters and a resumed run continues from exactly the same state. It is reset to zeros
at the first chunk of every epoch, where the streams start over. Gradients never cross a
chunk boundary (``dlcore.recurrent.tbptt_step`` stops them), so with k = T (one chunk) the
update equals full BPTT.

Evaluation runs each held-out window from a zero state, like :class:`TaggingTask`.
"""

import dataclasses
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlcore.data.needs import Need
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.recurrent import tbptt_step
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.sequence import (
    STEP_LABELS,
    TaggingTask,
    per_step_sums,
    sequence_metric_modes,
    step_weights,
)


@dataclasses.dataclass(frozen=True)
class TruncatedBPTTTask(TaskDefaults):
    """Per-step classification over B streams, k steps per update, carry in ``state.extra``.

    Attributes:
      model: called as ``model(x, train=bool, carry=..., return_carry=True)`` returning
        ``(carries, logits [B, k, K])`` (a unidirectional :class:`SequenceModel`).
      optimizer: the optax chain.
      num_examples: number of training windows (the loop's epoch is ``num_examples // B``
        steps; the carry resets when a new epoch starts).
      bits_metric: also report the loss in bits under this name.
      default_metric: validation metric that picks the best checkpoint.

    Example:
      >>> task = TruncatedBPTTTask(model, optax.adam(1e-3), num_examples=len(data.train))
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_BxK, "y": y_BxK})
      >>> state, sums = task.train_step(state, {"x": x_BxK, "y": y_BxK})
      >>> sorted(state.extra)
      ['carry']
    """

    model: nn.Module
    optimizer: optax.GradientTransformation
    num_examples: int
    bits_metric: str | None = None
    default_metric: str = "loss"
    batch_order: str = "streams"

    @property
    def metric_modes(self) -> dict[str, Mode]:
        return sequence_metric_modes(self.bits_metric)

    def _zero_carry(self, params, x_BxK: jax.Array):
        shapes, _ = jax.eval_shape(
            lambda p, x: self.model.apply({"params": p}, x, train=False, return_carry=True),
            params,
            x_BxK,
        )
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        batch_size = batch["x"].shape[0]
        if batch_size > self.num_examples:
            raise ValueError(
                f"train.batch_size ({batch_size}) is larger than the number of training "
                f"windows ({self.num_examples})"
            )
        state = TaggingTask(self.model, self.optimizer).init(rng, batch)
        return state.replace(extra={"carry": self._zero_carry(state.params, batch["x"])})

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        x_BxK, y_BxK = batch["x"], batch["y"]
        steps_per_epoch = self.num_examples // x_BxK.shape[0]
        new_epoch = state.step % steps_per_epoch == 0
        carry = jax.tree.map(
            lambda c: jnp.where(new_epoch, jnp.zeros_like(c), c), state.extra["carry"]
        )
        w_BxK = step_weights(y_BxK, batch.get("mask"))
        rngs = {"dropout": state.step_key("dropout")}

        def loss_fn(params, carry_in, chunk):
            carry_out, logits = self.model.apply(
                {"params": params},
                chunk["x"],
                train=True,
                rngs=rngs,
                carry=carry_in,
                return_carry=True,
            )
            loss, sums = per_step_sums(logits, chunk["y"], w_BxK, self.bits_metric)
            return loss, (carry_out, sums)

        _, grads, (carry, sums) = tbptt_step(loss_fn, state.params, carry, batch)
        new_state = apply_gradients(state, self.optimizer, grads)
        return new_state.replace(step=state.step + 1, extra={"carry": carry}), sums

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        logits = self.model.apply({"params": state.params}, batch["x"], train=False)
        w_BxT = step_weights(batch["y"], batch.get("mask"))
        return per_step_sums(logits, batch["y"], w_BxT, self.bits_metric)[1]


class TruncatedBPTTConfig(TaskSection):
    """Truncated BPTT: the training windows are read as train.batch_size parallel streams,
    one k-step chunk per update, the recurrent state carried across chunks (and checkpointed).
    """

    name: Literal["truncated_bptt"] = "truncated_bptt"
    bits_metric: str | None = "bits_per_char"

    def needs(self) -> tuple[Need, ...]:
        return (Need("x", ("tokens",), "token ids per step [T]", (1,)), STEP_LABELS)

    def build(self, ctx: BuildContext) -> TruncatedBPTTTask:
        model = ctx.model(ctx.data.num_classes)
        default = self.bits_metric or "loss"
        return TruncatedBPTTTask(
            model,
            ctx.optimizer(),
            ctx.data.sizes["train"],
            bits_metric=self.bits_metric,
            default_metric=default,
        )
