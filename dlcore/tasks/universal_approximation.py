"""Universal approximation (Cybenko 1989, Hornik 1991; deck 003): one hidden layer of a
squashing nonlinearity approximates a continuous function on a compact set as well as
wanted, given enough units. This task fits a 1-D target with networks of growing width,

.. math::  \\hat f_n(x) = \\sum_{j=1}^{n} v_j\\, \\sigma(a_j x + b_j) + c,

all widths at once: each width is its own network (its own parameter subtree
``width_<n>``), and the objective is the *sum* of their mean squared errors, so the
gradient of each network is exactly the one it would get alone. Element-wise optimizers
(SGD, momentum, Adam...) then train them independently in one compiled step; a global-norm
clip or a plateau schedule, which would couple them, is refused.

After the run it draws ``fits.png`` (each width's fit over the target) and
``error_vs_width.png`` (test MSE against width, log-log) and reports ``test_mse_width_<n>``.
"""

import dataclasses
import pathlib
from typing import ClassVar, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import Field, PositiveInt, field_validator

from dlcore.config.errors import FieldError
from dlcore.data.dataset import Dataset
from dlcore.data.needs import Need
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, TaskDefaults
from dlcore.optim.schedules import find_plateau
from dlcore.tasks.base import init_state
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.universal_approximation_report import plot_error_vs_width, plot_fits

# The theorem's squashing functions.
SQUASHING = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}


class OneHiddenLayer(nn.Module):
    """``x [B, 1] -> v . sigma(a x + b) + c``, ``[B, 1]``, with ``width`` hidden units.

    The hidden slopes start as ``a ~ N(0, input_scale^2)`` and the offsets as
    ``b ~ U(-input_scale, input_scale)``, so the units' centres ``-b/a`` spread over the
    input range instead of all sitting at 0 (zero biases); ``v`` starts LeCun-normal.
    """

    width: int
    activation: str = "tanh"
    input_scale: float = 4.0

    @nn.compact
    def __call__(self, x_Bx1: jax.Array) -> jax.Array:
        scale = self.input_scale

        def offsets(key, shape, dtype=jnp.float32):
            return jax.random.uniform(key, shape, dtype, -scale, scale)

        h_BxH = nn.Dense(self.width, kernel_init=nn.initializers.normal(scale), bias_init=offsets)(
            x_Bx1
        )
        return nn.Dense(1)(SQUASHING[self.activation](h_BxH))


class WidthBank(nn.Module):
    """One :class:`OneHiddenLayer` per width, side by side: ``x [B, 1] -> [B, len(widths)]``.

    Each network is named ``width_<n>``; Flax derives its initial parameters from that name,
    so a network starts the same whichever other widths are in the bank.
    """

    widths: tuple[int, ...]
    activation: str = "tanh"
    input_scale: float = 4.0

    @nn.compact
    def __call__(self, x_Bx1: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # no dropout or batch statistics: training and evaluation agree
        nets = [
            OneHiddenLayer(w, self.activation, self.input_scale, name=f"width_{w}")
            for w in self.widths
        ]
        return jnp.concatenate([net(x_Bx1) for net in nets], axis=-1)


@dataclasses.dataclass(frozen=True)
class UniversalApproximationTask(TaskDefaults):
    """Fits every width of ``model`` to ``y`` by the sum of their mean squared errors.

    Metrics: ``mse_width_<n>`` per width and ``loss``, their mean over widths.
    """

    model: WidthBank
    optimizer: optax.GradientTransformation
    default_metric: ClassVar[str] = "loss"

    @property
    def metric_modes(self) -> dict[str, str]:
        return {"loss": "min", **{self._name(w): "min" for w in self.model.widths}}

    @staticmethod
    def _name(width: int) -> str:
        return f"mse_width_{width}"

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        return init_state(self.model, self.optimizer, rng, batch["x"])

    def _errors(self, params, batch: Batch) -> tuple[jax.Array, jax.Array]:
        """(squared errors ``[B, W]``, example mask ``[B]``)."""
        pred_BxW = self.model.apply({"params": params}, batch["x"])
        y_Bx1 = batch["y"].reshape(-1, 1)
        mask_B = batch.get("mask", jnp.ones(pred_BxW.shape[0], pred_BxW.dtype))
        return jnp.square(pred_BxW - y_Bx1), mask_B

    def _sums(self, err_BxW: jax.Array, mask_B: jax.Array) -> Metrics:
        per_width_W = jnp.sum(err_BxW * mask_B[:, None], axis=0)
        sums = {self._name(w): per_width_W[i] for i, w in enumerate(self.model.widths)}
        return {**sums, "loss": jnp.mean(per_width_W), "count": jnp.sum(mask_B)}

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        def objective(params):
            err_BxW, mask_B = self._errors(params, batch)
            # the sum over widths of each width's mean: no width's gradient sees another
            mse_W = jnp.sum(err_BxW * mask_B[:, None], axis=0) / jnp.maximum(jnp.sum(mask_B), 1)
            return jnp.sum(mse_W), (err_BxW, mask_B)

        grads, (err_BxW, mask_B) = jax.grad(objective, has_aux=True)(state.params)
        new_state = apply_gradients(state, self.optimizer, grads).replace(step=state.step + 1)
        return new_state, self._sums(err_BxW, mask_B)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        return self._sums(*self._errors(state.params, batch))

    def predict(self, state: TrainState, x_Nx1: np.ndarray) -> np.ndarray:
        """Every width's prediction, ``[N, W]``."""
        return np.asarray(jax.jit(self.model.apply)({"params": state.params}, x_Nx1))

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """Draws ``fits.png`` and ``error_vs_width.png`` on the test grid and returns the
        test MSE of every width as ``test_mse_width_<n>``."""
        x, y = np.asarray(data.test.x), np.asarray(data.test.y)
        pred_NxW = self.predict(state, x)
        mse_W = np.mean(np.square(pred_NxW - y.reshape(-1, 1)), axis=0)
        widths = list(self.model.widths)
        plot_fits(x[:, 0], y[:, 0], pred_NxW, widths, directory / "fits.png")
        plot_error_vs_width(widths, mse_W, directory / "error_vs_width.png")
        return {f"test_mse_width_{w}": float(e) for w, e in zip(widths, mse_W, strict=True)}


class UniversalApproximationConfig(TaskSection):
    """One-hidden-layer networks of each width in ``widths``, trained side by side on a 1-D
    regression target (``[data] name = "function_1d"``)."""

    name: Literal["universal_approximation"] = "universal_approximation"
    model_roles: ClassVar[tuple[str, ...]] = ()  # its own networks, one per width
    widths: list[PositiveInt] = Field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32, 64],
        min_length=1,
        description="hidden units of each network, increasing",
    )
    activation: Literal[tuple(SQUASHING)] = Field(  # type: ignore[valid-type]
        "tanh", description="the theorem's squashing function"
    )
    input_scale: float = Field(
        4.0, gt=0.0, description="std of the hidden slopes; offsets ~ U(-scale, scale)"
    )

    @field_validator("widths")
    @classmethod
    def _increasing(cls, widths: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(widths, widths[1:], strict=False)):
            raise ValueError(f"must be strictly increasing (one network each); got {widths}")
        return widths

    def needs(self) -> tuple[Need, ...]:
        return (
            Need("x", ("features",), "one real input per example", (1,)),
            Need("y", ("targets",), "one real target per example", (1,)),
        )

    def build(self, ctx: BuildContext) -> UniversalApproximationTask:
        shapes = {k: ctx.data.fields[k].shape for k in ("x", "y")}
        if shapes != {"x": (1,), "y": (1,)}:
            raise FieldError("data", f"needs a 1-D function, x [1] and y [1]; got {shapes}")
        optimizer = ctx.cfg.optimizer
        if optimizer.clip_norm is not None:
            raise FieldError(
                "optimizer.clip_norm",
                "one global norm over every width would couple them; use clip_value",
            )
        if find_plateau(optimizer.schedule) is not None:
            raise FieldError(
                "optimizer.schedule", "a plateau factor shared by every width would couple them"
            )
        model = WidthBank(tuple(self.widths), self.activation, self.input_scale)
        return UniversalApproximationTask(model, ctx.optimizer())
