"""Rosenblatt's perceptron, binary and multi-class, trained online as a ``lax.scan``.

Binary (labels mapped to y in {-1, +1}, w0 = 0, sign(0) = +1):

    y_hat = sign(w . x);   if y_hat != y:  w <- w + y x

Multi-class with the joint feature map phi(x, y) = e_y (x) x, i.e. one weight row per class:

    y_hat = argmax_k  w . phi(x, k);   if y_hat != y:  w <- w + phi(x, y) - phi(x, y_hat)

Updates happen only on mistakes, one example at a time in the (seed, epoch) shuffled order;
a training step scans over the examples of its batch. Novikoff (1962): on data separable
with margin gamma inside a ball of radius R, the perceptron makes at most R^2 / gamma^2
mistakes in total.
"""

import dataclasses
import math
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp

from dlcore.data.needs import Need
from dlcore.engine.state import TrainState
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.tasks.context import BuildContext, TaskSection


@dataclasses.dataclass(frozen=True)
class PerceptronTask(TaskDefaults):
    """The perceptron as a task of the generic loop (no optimizer: its rule is the update).

    Attributes:
      num_classes: number of classes (2 gives the binary perceptron unless ``multiclass``).
      multiclass: use the joint-feature-map rule even for two classes.
      bias: append a constant 1 feature (a learned threshold); the textbook bound is stated
        for separators through the origin, i.e. ``bias=False``.

    Example:
      >>> task = PerceptronTask(num_classes=2)
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_BxD, "y": y_B})
      >>> state, sums = jax.jit(task.train_step)(state, {"x": x_BxD, "y": y_B})
      >>> int(sums["mistakes"])   # mistakes made during this pass over the batch
    """

    num_classes: int
    multiclass: bool = False
    bias: bool = False
    metric_modes: dict[str, Mode] = dataclasses.field(
        default_factory=lambda: {"mistakes": "min", "accuracy": "max", "zero_one": "min"}
    )
    default_metric: str = "accuracy"
    # Reported as totals over a log window (mistakes per epoch), not per-example means.
    total_metrics: tuple[str, ...] = ("mistakes",)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2 and not self.multiclass

    def _features(self, x: jax.Array) -> jax.Array:
        x_BxD = x.reshape(x.shape[0], -1)
        if self.bias:
            x_BxD = jnp.concatenate([x_BxD, jnp.ones_like(x_BxD[:, :1])], axis=1)
        return x_BxD

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        dim = self._features(batch["x"][:1]).shape[1]
        rows = 1 if self.binary else self.num_classes
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params={"w": jnp.zeros((rows, dim), jnp.float32)},
            model_state={},
            opt_state={},
            rng=rng,
        )

    def predict(self, params, x: jax.Array) -> jax.Array:
        """Class ids ``[B]``; binary: 1 where w . x >= 0 (sign(0) = +1), else 0."""
        scores_BxR = self._features(x) @ params["w"].T
        if self.binary:
            return (scores_BxR[:, 0] >= 0).astype(jnp.int32)
        return jnp.argmax(scores_BxR, axis=1).astype(jnp.int32)

    def _update(self, w_RxD: jax.Array, example) -> tuple[jax.Array, jax.Array]:
        x_D, y = example
        if self.binary:
            y_pm = 2 * y - 1
            mistake = jnp.where(w_RxD[0] @ x_D >= 0, 1, -1) != y_pm
            w_RxD = w_RxD.at[0].add(jnp.where(mistake, y_pm, 0) * x_D)
        else:
            y_hat = jnp.argmax(w_RxD @ x_D)
            mistake = y_hat != y
            step_D = jnp.where(mistake, x_D, 0.0)
            w_RxD = w_RxD.at[y].add(step_D).at[y_hat].add(-step_D)
        return w_RxD, mistake

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        w, mistakes_B = jax.lax.scan(
            self._update, state.params["w"], (self._features(batch["x"]), batch["y"])
        )
        n = mistakes_B.shape[0]
        mistakes = jnp.sum(mistakes_B.astype(jnp.float32))
        metrics = {
            "mistakes": mistakes,
            "accuracy": n - mistakes,
            "zero_one": mistakes,
            "count": jnp.float32(n),
        }
        return state.replace(step=state.step + 1, params={"w": w}), metrics

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        mask = batch.get("mask", jnp.ones(batch["y"].shape[0], jnp.float32))
        correct = (self.predict(state.params, batch["x"]) == batch["y"]).astype(jnp.float32)
        return {
            "accuracy": jnp.sum(correct * mask),
            "zero_one": jnp.sum((1 - correct) * mask),
            "count": jnp.sum(mask),
        }


def novikoff_bound(radius: float, margin: float) -> int:
    """The perceptron's mistake bound floor(R^2 / gamma^2) (Novikoff 1962)."""
    return math.floor((radius / margin) ** 2)


class PerceptronConfig(TaskSection):
    """Rosenblatt's perceptron (binary, or multi-class with a joint feature map)."""

    model_roles: ClassVar[tuple[str, ...]] = ()  # its own linear model
    optimizer_roles: ClassVar[tuple[str, ...]] = ()  # its update rule replaces a chain

    name: Literal["perceptron"] = "perceptron"
    multiclass: bool = False
    bias: bool = False

    def needs(self) -> tuple[Need, ...]:
        return (
            Need("x", ("features",), "real-valued feature vectors", (1,)),
            Need("y", ("labels",), "integer class labels, one per example", (0,)),
        )

    def build(self, ctx: BuildContext) -> PerceptronTask:
        return PerceptronTask(ctx.data.num_classes, multiclass=self.multiclass, bias=self.bias)
