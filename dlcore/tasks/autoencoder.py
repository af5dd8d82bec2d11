"""An autoencoder as a task: an encoder squeezes x through a narrow code, a decoder rebuilds it.

With encoder f (``[models.encoder]``) and decoder g (``[models.decoder]``), both trained by the
one ``[optimizer]`` chain over ``params = {"encoder": ..., "decoder": ...}``:

    z_i = f(x_i)  in R^K  (K = ``bottleneck``),    x_hat_i = reshape(g(z_i), shape(x_i))

    minimize  (1/B) sum_i L(x_hat_i, x_i),   e.g. mse: L = (1/D) sum_d (x_hat_id - x_id)^2

The task reads only the inputs ``x``, never labels, so it runs on unlabelled data as well.
It reports the loss and the per-example ``mse`` over all D input features; after a run it
draws test inputs above their reconstructions (``reconstructions.png``).
"""

import dataclasses
import math
import pathlib
from collections.abc import Callable
from typing import ClassVar, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import PositiveInt

from dlcore.config.errors import FieldError
from dlcore.config.section import one_of
from dlcore.data.dataset import Dataset, DataSpec, FieldSpec
from dlcore.data.needs import Need, first_unmet
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.losses import LOSSES, TASK_LOSSES, mean_squared_error, reduce_loss
from dlcore.tasks.base import apply_model
from dlcore.tasks.context import BuildContext, TaskSection

PerExample = Callable[[jax.Array, jax.Array], jax.Array]  # (reconstruction, x) -> [B]
INPUTS = Need("x", ("features",), "real-valued inputs to reconstruct")
ROLES = ("encoder", "decoder")
_REPORT_EXAMPLES = 10
_REPORT_BATCH = 1024  # bounds the memory of reconstructing a large test split at once


@dataclasses.dataclass(frozen=True)
class AutoencoderTask(TaskDefaults):
    """Trains ``decoder(encoder(x))`` to reproduce ``x`` (see the module docstring).

    Batches are dicts with ``x`` and optionally ``mask`` (``[B]``, 1 for real examples, 0
    for padding); any other field (labels) is ignored. Dropout keys come from
    ``state.step_key("encoder/dropout")`` and ``state.step_key("decoder/dropout")``;
    batch statistics live in ``state.model_state[role]`` for the roles that have them.

    Attributes:
      encoder: Flax module ``encoder(x, train=bool) -> [B, bottleneck]``.
      decoder: Flax module ``decoder(z, train=bool) -> [B, prod(shape(x))]``.
      optimizer: the one optax chain over both models' parameters.
      bottleneck: K, the code width the encoder must output.
      loss: per-example loss ``(x_hat, x) -> [B]``; its masked mean is minimized.
      image_shape: how to draw one example in ``report`` (``[8, 8]`` for digits); None or
        a shape that does not fit ``x`` draws examples as rows of numbers.

    Example:
      >>> task = AutoencoderTask(MLP((32,), 4), MLP((32,), 64), optax.adam(1e-3), 4)
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_Bx64})
      >>> state, sums = jax.jit(task.train_step)(state, {"x": x_Bx64})
      >>> float(sums["mse"] / sums["count"])   # mean squared reconstruction error
    """

    encoder: nn.Module
    decoder: nn.Module
    optimizer: optax.GradientTransformation
    bottleneck: int
    loss: PerExample = mean_squared_error
    image_shape: tuple[int, ...] | None = None
    metric_modes: dict[str, Mode] = dataclasses.field(
        default_factory=lambda: {"loss": "min", "mse": "min"}
    )
    default_metric: str = "mse"

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        k_enc, k_dec, k_dropout, k_state = jax.random.split(rng, 4)
        x = batch["x"]
        enc = dict(self.encoder.init({"params": k_enc, "dropout": k_dropout}, x, train=False))
        z_BxK = self.encoder.apply(enc, x, train=False)
        self._check_code(z_BxK, x)
        dec = dict(self.decoder.init({"params": k_dec, "dropout": k_dropout}, z_BxK, train=False))
        params = {"encoder": enc.pop("params"), "decoder": dec.pop("params")}
        # Only roles with variables besides params get an entry: an empty pytree node
        # would have to survive checkpointing for nothing.
        model_state = {role: v for role, v in (("encoder", enc), ("decoder", dec)) if v}
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state=model_state,
            opt_state=self.optimizer.init(params),
            rng=k_state,
        )

    def _check_code(self, z: jax.Array, x: jax.Array) -> None:
        # Shapes are static, so this runs once at trace time and costs nothing per step.
        if z.shape != (x.shape[0], self.bottleneck):
            raise ValueError(
                f"the encoder must output codes [B, {self.bottleneck}] (bottleneck); got "
                f"{tuple(z.shape)} for inputs {tuple(x.shape)}"
            )

    def _apply(self, role: str, state: TrainState, params, h: jax.Array, train: bool):
        module = self.encoder if role == "encoder" else self.decoder
        key = state.step_key(f"{role}/dropout") if train else None
        return apply_model(module, params[role], state.model_state.get(role, {}), h, key)

    def reconstruct(
        self, state: TrainState, params, x: jax.Array, train: bool = False
    ) -> tuple[jax.Array, jax.Array, dict]:
        """x_hat = reshape(g(f(x)), shape(x)).

        Args:
          state: supplies model state (batch statistics) and the step's dropout keys.
          params: ``{"encoder": ..., "decoder": ...}`` (differentiated in training).
          x: inputs ``[B, ...]``.
          train: dropout on and batch statistics updated.

        Returns:
          ``(x_hat, z_BxK, model_state)``: the reconstruction shaped like ``x``, the codes,
          and the updated model state.
        """
        z_BxK, enc_state = self._apply("encoder", state, params, x, train)
        self._check_code(z_BxK, x)
        flat_BxD, dec_state = self._apply("decoder", state, params, z_BxK, train)
        size = math.prod(x.shape[1:])
        if flat_BxD.shape != (x.shape[0], size):
            raise ValueError(
                f"the decoder must output [B, {size}] (the size of one input); got "
                f"{tuple(flat_BxD.shape)}"
            )
        model_state = {role: s for role, s in (("encoder", enc_state), ("decoder", dec_state)) if s}
        return flat_BxD.reshape(x.shape), z_BxK, model_state

    def objective(self, params, state: TrainState, batch: Batch, train: bool = True):
        """The minimized scalar, the masked mean of ``loss(x_hat_i, x_i)``.

        Returns:
          ``(scalar, (per_example_B, x_hat, model_state))``.
        """
        x_hat, _, model_state = self.reconstruct(state, params, batch["x"], train)
        per_example_B = self.loss(x_hat, batch["x"])
        return reduce_loss(per_example_B, batch.get("mask")), (per_example_B, x_hat, model_state)

    def _metric_sums(self, x_hat: jax.Array, batch: Batch, per_example_B: jax.Array) -> Metrics:
        mask_B = batch.get("mask", jnp.ones_like(per_example_B))
        return {
            "loss": jnp.sum(per_example_B * mask_B),
            "mse": jnp.sum(mean_squared_error(x_hat, batch["x"]) * mask_B),
            "count": jnp.sum(mask_B),
        }

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        grads, (per_example_B, x_hat, model_state) = jax.grad(self.objective, has_aux=True)(
            state.params, state, batch, True
        )
        new_state = apply_gradients(state, self.optimizer, grads)
        new_state = new_state.replace(step=state.step + 1, model_state=model_state)
        return new_state, self._metric_sums(x_hat, batch, per_example_B)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        _, (per_example_B, x_hat, _) = self.objective(state.params, state, batch, train=False)
        return self._metric_sums(x_hat, batch, per_example_B)

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """Draws ``reconstructions.png`` (test inputs above their reconstructions) and
        returns the test MSE and the fraction of the test variance around the training
        mean that the reconstructions explain, 1 - SSE / SST."""
        x = np.asarray(data.test.x)
        run = jax.jit(lambda s, x: self.reconstruct(s, s.params, x)[0])
        x_hat = np.concatenate(
            [
                np.asarray(run(state, x[i : i + _REPORT_BATCH]))
                for i in range(0, len(x), _REPORT_BATCH)
            ]
        )
        err = (x_hat - x).astype(np.float64) ** 2
        spread = (x - np.asarray(data.train.x).mean(axis=0)).astype(np.float64) ** 2
        plot_reconstructions(
            x[:_REPORT_EXAMPLES],
            x_hat[:_REPORT_EXAMPLES],
            self.image_shape,
            directory / "reconstructions.png",
        )
        return {
            "test_mse": float(err.mean()),
            "test_variance_explained": float(1.0 - err.sum() / max(spread.sum(), 1e-12)),
        }


def plot_reconstructions(
    x_NxD: np.ndarray, x_hat_NxD: np.ndarray, image_shape, path: pathlib.Path
) -> None:
    """Top row the inputs, bottom row their reconstructions, on the inputs' colour scale.

    Examples are drawn as ``image_shape`` images when they have that many values, else
    the N examples are drawn as N rows of numbers, inputs above reconstructions.
    """
    # Imported here: matplotlib is slow to import and only the end of a run needs it.
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    n = len(x_NxD)
    flat_in = x_NxD.reshape(n, -1)
    flat_out = x_hat_NxD.reshape(n, -1)
    # Percentiles, not min/max: a standardized, rarely inked pixel can sit at 10+ standard
    # deviations and would wash every other pixel out to one grey.
    lo, hi = (float(v) for v in np.percentile(flat_in, [2.0, 98.0]))
    if image_shape and math.prod(image_shape) == flat_in.shape[1]:
        fig, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.6), squeeze=False)
        for i in range(n):
            for row, images in enumerate((flat_in, flat_out)):
                ax = axes[row, i]
                ax.imshow(images[i].reshape(image_shape), cmap="gray_r", vmin=lo, vmax=hi)
                ax.set_xticks([])
                ax.set_yticks([])
        axes[0, 0].set_ylabel("input")
        axes[1, 0].set_ylabel("output")
    else:
        fig, axes = plt.subplots(2, 1, figsize=(8, 4), squeeze=False)
        panels = ((flat_in, "inputs"), (flat_out, "reconstructions"))
        for ax, (rows, title) in zip(axes[:, 0], panels, strict=True):
            ax.imshow(rows, aspect="auto", cmap="coolwarm", vmin=lo, vmax=hi)
            ax.set_title(title)
            ax.set_ylabel("example")
        axes[1, 0].set_xlabel("feature")
    fig.suptitle("test inputs (top) and reconstructions (bottom)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class AutoencoderConfig(TaskSection):
    """Reconstruct x through a ``bottleneck``-wide code: ``[models.encoder]`` reads x and
    outputs the code, ``[models.decoder]`` maps it back; one ``[optimizer]`` trains both.
    Labels are never read. Reports loss and mse."""

    model_roles: ClassVar[tuple[str, ...]] = ROLES
    optimizer_roles: ClassVar[tuple[str, ...]] = ("model",)  # one chain over both models

    name: Literal["autoencoder"] = "autoencoder"
    bottleneck: PositiveInt = 16
    loss: one_of(TASK_LOSSES["reconstruction"], "reconstruction loss") = "mse"

    def needs(self) -> tuple[Need, ...]:
        return (INPUTS,)

    def build(self, ctx: BuildContext) -> AutoencoderTask:
        x = ctx.data.fields["x"]
        encoder = ctx.model(self.bottleneck, "encoder")
        # The decoder reads the code, not x: check its needs against what the code is.
        code = DataSpec(
            "the code", {"x": FieldSpec((self.bottleneck,), x.dtype, "features")}, {}, None, {}
        )
        problem = first_unmet(ctx.model_section("decoder").needs(), code)
        if problem is not None:
            name = ctx.model_section("decoder").name
            raise FieldError(
                "models.decoder.name",
                f"{name} {problem} (the encoder's output); the decoder must read real "
                "vectors, e.g. mlp or linear",
            )
        decoder = ctx.model(math.prod(x.shape), "decoder", reads_data=False)
        shape = ctx.data.info.get("image_shape")
        return AutoencoderTask(
            encoder,
            decoder,
            ctx.optimizer(),
            self.bottleneck,
            LOSSES[self.loss],
            tuple(shape) if shape else None,
        )
