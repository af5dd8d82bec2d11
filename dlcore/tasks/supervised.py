"""Supervised learning as a task: (model, per-example loss, per-example metrics, optax chain)."""

import dataclasses
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlcore.losses import reduce_loss, softmax_cross_entropy, squared_error
from dlcore.state import TrainState
from dlcore.tasks.base import Batch, Metrics, Mode

PerExample = Callable[[jax.Array, jax.Array], jax.Array]  # (pred, target) -> [B]


def accuracy(logits_BxK: jax.Array, labels_B: jax.Array) -> jax.Array:
    """1.0 where the arg-max class equals the label, else 0.0; shape ``[B]``."""
    return (jnp.argmax(logits_BxK, axis=-1) == labels_B).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class SupervisedTask:
    """Fits ``model(x) -> pred`` to targets ``y`` by minimizing ``loss(pred, y)``.

    Batches are dicts with ``x``, ``y`` and optionally ``mask`` (``[B]``, 1 for real
    examples, 0 for padding). Dropout keys come from ``state.step_key("dropout")``.

    Attributes:
      model: a Flax linen module called as ``model(x, train=bool)``.
      loss: per-example loss ``(pred, y) -> [B]``; its weighted mean is minimized.
      metrics: per-example metrics ``(pred, y) -> [B]`` reported as means (with "loss").
      optimizer: the optax chain.
      metric_modes: whether each metric is better large or small (``loss`` is added).
      default_metric: validation metric that picks the best checkpoint.
    """

    model: nn.Module
    loss: PerExample
    metrics: Mapping[str, PerExample]
    optimizer: optax.GradientTransformation
    metric_modes: dict[str, Mode]
    default_metric: str

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        k_params, k_dropout, k_state = jax.random.split(rng, 3)
        variables = self.model.init(
            {"params": k_params, "dropout": k_dropout}, batch["x"], train=False
        )
        variables = dict(variables)
        params = variables.pop("params")
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state=variables,
            opt_state=self.optimizer.init(params),
            rng=k_state,
        )

    def _forward(self, state: TrainState, params, x: jax.Array, train: bool):
        variables = {"params": params, **state.model_state}
        if not train:
            return self.model.apply(variables, x, train=False), state.model_state
        rngs = {"dropout": state.step_key("dropout")}
        if not state.model_state:
            return self.model.apply(variables, x, train=True, rngs=rngs), state.model_state
        pred, updated = self.model.apply(
            variables, x, train=True, rngs=rngs, mutable=list(state.model_state)
        )
        return pred, dict(updated)

    def _metric_sums(self, pred, batch: Batch, per_example_loss: jax.Array) -> Metrics:
        mask = batch.get("mask", jnp.ones_like(per_example_loss))
        sums = {"loss": jnp.sum(per_example_loss * mask), "count": jnp.sum(mask)}
        for name, fn in self.metrics.items():
            sums[name] = jnp.sum(fn(pred, batch["y"]) * mask)
        return sums

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        def objective(params):
            pred, model_state = self._forward(state, params, batch["x"], train=True)
            per_example = self.loss(pred, batch["y"])
            return reduce_loss(per_example, batch.get("mask")), (pred, model_state, per_example)

        grads, (pred, model_state, per_example) = jax.grad(objective, has_aux=True)(state.params)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            model_state=model_state,
            opt_state=opt_state,
        )
        return new_state, self._metric_sums(pred, batch, per_example)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        pred, _ = self._forward(state, state.params, batch["x"], train=False)
        return self._metric_sums(pred, batch, self.loss(pred, batch["y"]))


def classification(model: nn.Module, optimizer: optax.GradientTransformation) -> SupervisedTask:
    """Softmax cross-entropy on integer labels, reporting loss and accuracy."""
    return SupervisedTask(
        model=model,
        loss=softmax_cross_entropy,
        metrics={"accuracy": accuracy},
        optimizer=optimizer,
        metric_modes={"loss": "min", "accuracy": "max"},
        default_metric="accuracy",
    )


def regression(model: nn.Module, optimizer: optax.GradientTransformation) -> SupervisedTask:
    """Half squared error on real-valued targets, reporting loss and MSE."""

    def mse(pred, y):
        return 2.0 * squared_error(pred, y) / pred[0].size

    return SupervisedTask(
        model=model,
        loss=squared_error,
        metrics={"mse": mse},
        optimizer=optimizer,
        metric_modes={"loss": "min", "mse": "min"},
        default_metric="mse",
    )
