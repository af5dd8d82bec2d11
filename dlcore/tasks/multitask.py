"""Multi-task classification: one head and one loss per target, hard or soft sharing.

The data's targets are integer columns ``y [B, K]`` named by ``Dataset.info["targets"]``
(e.g. a digit's class and its parity); the model returns a dict of logits keyed by the same
names; the objective is L = sum_k alpha_k CE_k (+ lambda R for soft sharing).

Hard sharing: ``dlcore.models.MultiHeadMLP``, one trunk for all tasks. Soft sharing:
``dlcore.models.MultiTowerMLP``, one tower per task, pulled together by
lambda R = lambda sum_{a<b} sum_l ||theta_l^a - theta_l^b||^2 (Duong et al., 2015).
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Literal

import flax.linen as nn
import jax
import optax
from pydantic import Field, NonNegativeInt

from dlcore.config.errors import FieldError
from dlcore.data.needs import Need
from dlcore.engine.state import TrainState
from dlcore.engine.task import Batch, Metrics
from dlcore.losses import MultiTaskLoss, softmax_cross_entropy
from dlcore.models.multitower import MultiTowerMLP, tower_distance
from dlcore.regularizers import PenaltySection
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.supervised import Penalty, SupervisedTask, accuracy
from dlcore.traced import statically_zero

# The metrics a soft-sharing task adds: R(theta) and lambda R(theta).
SHARING_MODES = {"tower_distance": "min", "sharing_penalty": "min"}


class SharingOptionError(ValueError):
    """A soft-sharing option that does not fit the model; ``option`` names the field."""

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class SoftSharingTask(SupervisedTask):
    """A :class:`SupervisedTask` that also reports the towers' distance R(theta) and the
    sharing penalty lambda R(theta) (of the parameters the step starts from); the penalty
    itself is part of ``penalty``.

    Attributes:
      distance: ``params -> R(theta)``, e.g. :func:`dlcore.models.multitower.tower_distance`.
      strength: lambda.
    """

    distance: Callable[[object], jax.Array] | None = None
    strength: float | jax.Array = 0.0

    def _with_distance(self, sums: Metrics, params) -> Metrics:
        # Metrics are sums over examples (mean = sum / count), so a per-batch constant is
        # reported as constant * count.
        r = self.distance(params)
        return {
            **sums,
            "tower_distance": r * sums["count"],
            "sharing_penalty": self.strength * r * sums["count"],
        }

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        new_state, sums = super().train_step(state, batch)
        return new_state, self._with_distance(sums, state.params)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        return self._with_distance(super().eval_step(state, batch), state.params)


def multitask_classification(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    targets: list[str],
    weights: Mapping[str, float],
    penalty: Penalty | None = None,
    sharing_strength: float = 0.0,
    shared_layers: tuple[int, ...] | None = None,
) -> SupervisedTask:
    """Reports the combined ``loss`` and ``<target>_accuracy`` for every target.

    With per-task towers (a :class:`dlcore.models.MultiTowerMLP`) the objective gains the
    soft-sharing penalty lambda R(theta) over ``shared_layers``, and the task also reports
    ``tower_distance`` R and ``sharing_penalty`` lambda R.

    Args:
      model: returns ``{target: logits [B, K_target]}``.
      optimizer: the optax chain.
      targets: target names in the column order of ``y``.
      weights: alpha of each target.
      penalty: optional weight penalty.
      sharing_strength: lambda >= 0 (towers only); 0 leaves the towers independent.
      shared_layers: hidden-layer indices of the towers that are shared softly (towers
        only; None: all of them).

    Raises:
      SharingOptionError: for soft-sharing options without towers, or a layer the towers
        lack.
    """
    combined = MultiTaskLoss({t: softmax_cross_entropy for t in targets}, dict(weights))

    def columns(y_BxK: jax.Array) -> dict[str, jax.Array]:
        return {t: y_BxK[:, i] for i, t in enumerate(targets)}

    def head_accuracy(name):
        return lambda preds, y: accuracy(preds[name], columns(y)[name])

    metrics = {f"{t}_accuracy": head_accuracy(t) for t in targets}
    common = dict(
        model=model,
        loss=lambda preds, y: combined(preds, columns(y)),
        metrics=metrics,
        optimizer=optimizer,
        metric_modes={"loss": "min", **{m: "max" for m in metrics}},
        default_metric=f"{targets[0]}_accuracy",
    )
    if not isinstance(model, MultiTowerMLP):
        if not statically_zero(sharing_strength) or shared_layers is not None:
            option = "shared_layers" if statically_zero(sharing_strength) else "sharing_strength"
            raise SharingOptionError(
                option,
                f"{option} needs per-task towers ([model] name = 'multitower_mlp'); "
                f"{type(model).__name__} has none to share softly",
            )
        return SupervisedTask(**common, penalty=penalty)
    depth = len(model.tower_widths)
    layers = tuple(range(depth)) if shared_layers is None else tuple(shared_layers)
    if any(not 0 <= layer < depth for layer in layers) or len(set(layers)) != len(layers):
        raise SharingOptionError(
            "shared_layers",
            f"shared_layers must be distinct hidden-layer indices in [0, {depth}) of the "
            f"towers ({depth} hidden layers); got {list(layers)}",
        )

    def distance(params) -> jax.Array:
        return tower_distance(params, targets, layers)

    def objective_penalty(params) -> jax.Array:
        total = sharing_strength * distance(params)
        return total if penalty is None else total + penalty(params)

    # A concrete lambda = 0 adds no term at all, so the towers train exactly as independent
    # networks; a traced lambda (a population member's) always takes the general path.
    return SoftSharingTask(
        **{**common, "metric_modes": {**common["metric_modes"], **SHARING_MODES}},
        penalty=penalty if statically_zero(sharing_strength) else objective_penalty,
        distance=distance,
        strength=sharing_strength,
    )


class MultitaskConfig(PenaltySection, TaskSection):
    """One softmax cross-entropy per target of the data, L = sum_k weights[k] CE_k, over a
    shared-trunk multi-head model (``[model] name = "multihead_mlp"``: hard sharing) or over
    per-task towers (``"multitower_mlp"``: soft sharing, L + sharing_strength R)."""

    name: Literal["multitask"] = "multitask"
    weights: dict[str, float] = Field(
        default_factory=dict, description="alpha per target name (default 1.0 each)"
    )
    sharing_strength: float = Field(
        0.0,
        ge=0.0,
        description="multitower_mlp: lambda of sum_{a<b} sum_l ||theta_l^a - theta_l^b||^2",
    )
    shared_layers: list[NonNegativeInt] | None = Field(
        None, description="multitower_mlp: hidden layers shared softly (default: all)"
    )

    def needs(self) -> tuple[Need, ...]:
        return (Need("y", ("labels",), "one integer label column per target [K]", (1,)),)

    def build(self, ctx: BuildContext) -> SupervisedTask:
        heads = ctx.data.info.get("targets", {})
        if not heads:
            raise ValueError(f"{ctx.data.name} names no targets; multitask needs several")
        targets = list(heads)
        unknown = sorted(set(self.weights) - set(targets))
        if unknown:
            raise ValueError(
                f"weights name targets {unknown} that the data does not have; "
                f"its targets are {targets}"
            )
        weights = {t: self.weights.get(t, 1.0) for t in targets}
        model = ctx.model(heads)
        try:
            return multitask_classification(
                model,
                ctx.optimizer(),
                targets,
                weights,
                self.make_penalty(),
                self.sharing_strength,
                None if self.shared_layers is None else tuple(self.shared_layers),
            )
        except SharingOptionError as err:
            raise FieldError(f"task.{err.option}", str(err)) from None
