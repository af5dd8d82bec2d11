"""Stacked autoencoders trained greedily, one layer at a time, in one run (Bengio et al. 2007).

With h_0 = x (flattened, width d_0) and widths d_1..d_L from ``[task] widths``, layer l
(0-based) is a one-hidden-layer autoencoder of the code below it:

    h_{l+1} = a(h~_l W_l + b_l),        r_l = h_{l+1} V_l + c_l,
    L_l     = (1/B) sum_i (1/d_l) ||r_l,i - h_l,i||^2

where h~_l is h_l, or (denoising, :mod:`dlcore.tasks.corruption`) h_l with each value
zeroed with probability p (``corruption = "masking"``) or plus Gaussian noise of std sigma
(``"gaussian"``), p or sigma = ``corruption_level``. Its input h_l comes from the
already trained layers below through ``stop_gradient``. Decoders are affine (they
reconstruct standardized pixels or codes, which may be negative); ``tied = true`` uses
V_l = W_l^T and learns only c_l.

Staging (:mod:`dlcore.tasks.greedy`): update t trains layer min(floor(t / S), L - 1) with
S = ``steps_per_layer``; other layers get exactly zero updates, and by default the
optimizer state restarts at each stage. The top layer keeps training after its stage, and
the run must have at least L S steps (checked when the experiment is built).

Parameters use the ``mlp`` model's names, so a classifier warm-starts from the stack::

    # (tied: no decoder kernel)
    params = {"encoder": {"Dense_l": {"kernel": W_l [d_l, d_{l+1}], "bias": b_l}},
              "decoder": {"Dense_l": {"kernel": V_l [d_{l+1}, d_l], "bias": c_l}}}

    [init]  # in an mlp classification run with widths = the stack's widths
    run = "<this run>"
    checkpoint = "latest"
    map = { "" = "encoder" }
    exclude = ["Dense_<L>"]    # the classifier's head
    allow_unused = true        # the decoders

Metrics: ``mse`` (the current stage's reconstruction error) and ``layer`` (its index) while
training; validation adds ``mse_l`` for every layer and ``stack_mse``, the input rebuilt
through all L encoders and decoders, which selects the best checkpoint.
"""

import dataclasses
import math
import pathlib
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import Field, PositiveInt, model_validator

from dlcore.activations import ACTIVATIONS, get_activation
from dlcore.config.section import one_of
from dlcore.data.dataset import Dataset
from dlcore.data.needs import Need
from dlcore.engine.state import TrainState
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.initializers import get_initializer
from dlcore.losses import mean_squared_error, reduce_loss
from dlcore.tasks.autoencoder_report import plot_reconstructions
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.corruption import CORRUPTIONS, Corruption, check_corruption_level, make_corruption
from dlcore.tasks.greedy import active_layer, check_stage_budget, greedy_update, layer_ids

_REPORT_EXAMPLES = 10
_REPORT_BATCH = 1024  # bounds the memory of evaluating a large test split at once


def _name(layer: int) -> str:
    return f"Dense_{layer}"  # the mlp model's name of its layer-th dense layer


@dataclasses.dataclass(frozen=True)
class StackedAutoencoderTask(TaskDefaults):
    """Greedy layer-wise training of a stack of autoencoders (see the module docstring).

    Attributes:
      widths: code widths d_1..d_L.
      optimizer: the one chain over all parameters (only the active layer's move).
      steps_per_layer: S.
      activation: name in ``dlcore.activations.ACTIVATIONS`` of the encoders' a.
      tied: decoders use the transposed encoder kernels.
      corruption: ``(key, h) -> h~`` applied to each layer's input in training, or None.
      restart_optimizer: fresh optimizer state at each stage start.
      image_shape: how to draw one input in ``report``; None draws rows of numbers.

    Example:
      >>> task = StackedAutoencoderTask((32, 16), optax.adam(1e-3), steps_per_layer=100)
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_Bx64})
      >>> state, sums = jax.jit(task.train_step)(state, {"x": x_Bx64})
      >>> float(sums["mse"] / sums["count"]), float(sums["layer"] / sums["count"])
    """

    widths: tuple[int, ...]
    optimizer: optax.GradientTransformation
    steps_per_layer: int
    activation: str = "relu"
    tied: bool = False
    corruption: Corruption | None = None
    restart_optimizer: bool = True
    image_shape: tuple[int, ...] | None = None
    default_metric: str = "stack_mse"

    @property
    def num_layers(self) -> int:
        return len(self.widths)

    @property
    def metric_modes(self) -> dict[str, Mode]:
        per_layer = {f"mse_{i}": "min" for i in range(self.num_layers)}
        return {"mse": "min", "layer": "max", "stack_mse": "min", **per_layer}

    @property
    def layers(self) -> tuple[tuple[str, ...], ...]:
        """Layer l's parameters, as :func:`dlcore.tasks.greedy.layer_ids` patterns."""
        return tuple((f"encoder/{_name(i)}", f"decoder/{_name(i)}") for i in range(self.num_layers))

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        dims = (math.prod(batch["x"].shape[1:]), *self.widths)
        kernel_init = get_initializer("lecun_normal")  # the mlp model's default
        encoder, decoder = {}, {}
        keys = jax.random.split(rng, 2 * self.num_layers + 1)
        for i in range(self.num_layers):
            d_in, d_out = dims[i], dims[i + 1]
            w = kernel_init(keys[2 * i], (d_in, d_out), jnp.float32)
            encoder[_name(i)] = {"kernel": w, "bias": jnp.zeros((d_out,), jnp.float32)}
            decoder[_name(i)] = {"bias": jnp.zeros((d_in,), jnp.float32)}
            if not self.tied:
                v = kernel_init(keys[2 * i + 1], (d_out, d_in), jnp.float32)
                decoder[_name(i)]["kernel"] = v
        params = {"encoder": encoder, "decoder": decoder}
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state={},
            opt_state=self.optimizer.init(params),
            rng=keys[-1],
        )

    def encode(self, params, h_BxD: jax.Array, layer: int) -> jax.Array:
        """h_{layer+1} = a(h_layer W_layer + b_layer)."""
        p = params["encoder"][_name(layer)]
        return get_activation(self.activation)(h_BxD @ p["kernel"] + p["bias"][None, :])

    def decode(self, params, z_BxH: jax.Array, layer: int) -> jax.Array:
        """r_layer = z V_layer + c_layer (V = W^T when tied)."""
        dec = params["decoder"][_name(layer)]
        v = params["encoder"][_name(layer)]["kernel"].T if self.tied else dec["kernel"]
        return z_BxH @ v + dec["bias"][None, :]

    def codes(self, params, x: jax.Array, upto: int) -> list[jax.Array]:
        """[h_0, ..., h_upto]: the flattened input and the clean codes above it."""
        hs = [x.reshape(x.shape[0], -1)]
        for i in range(upto):
            hs.append(self.encode(params, hs[-1], i))
        return hs

    def layer_errors(self, params, x: jax.Array, layer: int, key: jax.Array | None) -> jax.Array:
        """Per-example L_layer ``[B]``; the input comes from the frozen layers below
        (``stop_gradient``) and is corrupted when ``key`` is given."""
        h_BxD = jax.lax.stop_gradient(self.codes(params, x, layer)[-1])
        noisy = h_BxD if key is None or self.corruption is None else self.corruption(key, h_BxD)
        r_BxD = self.decode(params, self.encode(params, noisy, layer), layer)
        return mean_squared_error(r_BxD, h_BxD)

    def reconstruct(self, params, x: jax.Array) -> jax.Array:
        """x rebuilt through every encoder, then every decoder top-down; shaped like x."""
        r = self.codes(params, x, self.num_layers)[-1]
        for i in reversed(range(self.num_layers)):
            r = self.decode(params, r, i)
        return r.reshape(x.shape)

    def _layer(self, step: jax.Array) -> jax.Array:
        return active_layer(step, self.steps_per_layer, self.num_layers)

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        layer = self._layer(state.step)
        key = state.step_key("corruption")
        mask_B = batch.get("mask")

        def objective(params):
            # One branch per layer: widths differ, so the stage is a switch, not a select.
            branches = [
                lambda p, i=i: self.layer_errors(p, batch["x"], i, key)
                for i in range(self.num_layers)
            ]
            per_example_B = jax.lax.switch(layer, branches, params)
            return reduce_loss(per_example_B, mask_B), per_example_B

        grads, per_example_B = jax.grad(objective, has_aux=True)(state.params)
        ids = layer_ids(state.params, self.layers)
        params, opt_state = greedy_update(
            self.optimizer,
            grads,
            state.opt_state,
            state.params,
            ids,
            state.step,
            self.steps_per_layer,
            self.num_layers,
            restart=self.restart_optimizer,
        )
        weights_B = jnp.ones_like(per_example_B) if mask_B is None else mask_B
        count = jnp.sum(weights_B)
        metrics = {
            "mse": jnp.sum(per_example_B * weights_B),
            "layer": layer.astype(jnp.float32) * count,
            "count": count,
        }
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, metrics

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        x = batch["x"]
        mask_B = batch.get("mask", jnp.ones((x.shape[0],), jnp.float32))
        per_layer = [
            jnp.sum(self.layer_errors(state.params, x, i, None) * mask_B)
            for i in range(self.num_layers)
        ]
        layer = self._layer(state.step)
        count = jnp.sum(mask_B)
        stack_B = mean_squared_error(
            self.reconstruct(state.params, x).reshape(x.shape[0], -1), x.reshape(x.shape[0], -1)
        )
        return {
            "mse": jnp.stack(per_layer)[layer],
            "layer": layer.astype(jnp.float32) * count,
            "stack_mse": jnp.sum(stack_B * mask_B),
            **{f"mse_{i}": s for i, s in enumerate(per_layer)},
            "count": count,
        }

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """Test reconstruction error of every layer (``test_mse_layer_l``) and through
        the whole stack (``test_stack_mse``); draws test inputs above their stack
        reconstructions (``reconstructions.png``)."""
        x = np.asarray(data.test.x)
        run = jax.jit(self.eval_step)
        parts = [
            run(state, {"x": x[i : i + _REPORT_BATCH]}) for i in range(0, len(x), _REPORT_BATCH)
        ]
        sums = {k: sum(float(p[k]) for p in parts) for k in parts[0]}
        n = max(sums["count"], 1.0)
        out = {f"test_mse_layer_{i}": sums[f"mse_{i}"] / n for i in range(self.num_layers)}
        out["test_stack_mse"] = sums["stack_mse"] / n
        x_hat = np.asarray(jax.jit(self.reconstruct)(state.params, x[:_REPORT_EXAMPLES]))
        plot_reconstructions(
            x[:_REPORT_EXAMPLES], x_hat, self.image_shape, directory / "reconstructions.png"
        )
        return out


class StackedAutoencoderConfig(TaskSection):
    """A stack of autoencoders of the given code ``widths``, trained greedily:
    ``steps_per_layer`` updates per layer, bottom up. The task owns its parameters (no
    [model] section); they load into an ``mlp`` of the same widths through ``[init]``."""

    model_roles: ClassVar[tuple[str, ...]] = ()  # its own encoders and decoders
    optimizer_roles: ClassVar[tuple[str, ...]] = ("model",)  # one chain: [optimizer]

    name: Literal["stacked_autoencoder"] = "stacked_autoencoder"
    widths: list[PositiveInt] = Field(
        default_factory=lambda: [128, 64], min_length=1, description="code widths, bottom up"
    )
    activation: one_of(ACTIVATIONS, "activation") = "relu"
    steps_per_layer: PositiveInt = Field(100, description="updates per layer's stage (S)")
    tied: bool = Field(False, description="decoders use the transposed encoder kernels")
    corruption: one_of(("none", *CORRUPTIONS), "corruption") = Field(
        "none", description="denoising each layer's input: 'masking' or 'gaussian'"
    )
    corruption_level: float | None = Field(
        None, gt=0.0, description="masking: drop probability p; gaussian: noise std sigma"
    )
    restart_optimizer: bool = Field(True, description="fresh optimizer state at each stage")

    @model_validator(mode="after")
    def _corruption_level_fits(self):
        # The same rules and words as the autoencoder task's denoising fields.
        check_corruption_level(self.corruption, self.corruption_level)
        return self

    def needs(self) -> tuple[Need, ...]:
        return (Need("x", ("features",), "real-valued inputs to reconstruct"),)

    def build(self, ctx: BuildContext) -> StackedAutoencoderTask:
        train = ctx.cfg.train
        total = train.epochs * (ctx.data.sizes["train"] // train.batch_size)
        check_stage_budget(total, len(self.widths), self.steps_per_layer)
        shape = ctx.data.info.get("image_shape")
        return StackedAutoencoderTask(
            tuple(self.widths),
            ctx.optimizer(),
            self.steps_per_layer,
            self.activation,
            self.tied,
            make_corruption(self.corruption, self.corruption_level or 0.0),
            self.restart_optimizer,
            tuple(shape) if shape else None,
        )
