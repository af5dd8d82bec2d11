"""An autoencoder as a task: an encoder squeezes x through a narrow code, a decoder rebuilds it.

With encoder f (``[models.encoder]``) and decoder g (``[models.decoder]``), both trained by the
one ``[optimizer]`` chain over ``params = {"encoder": ..., "decoder": ...}``:

    z_i = a(f(x_tilde_i))  in R^K  (K = ``bottleneck``),   x_hat_i = reshape(g(z_i), shape(x_i))

    minimize  (1/B) sum_i L(x_hat_i, x_i) + Omega(z),
    e.g. mse: L = (1/D) sum_d (x_hat_id - x_id)^2

By default a is the identity, x_tilde = x and Omega = 0 (the plain autoencoder). Options:

- ``tied = true``: g's kernels are f's transposed, in reverse order (:mod:`tied_weights`);
- ``code_activation``: a, e.g. sigmoid for codes in (0, 1);
- ``sparsity_l1``, ``sparsity_kl``, ``sparsity_target``: Omega, an L1 and a KL-to-rate
  penalty on the codes (:mod:`autoencoder_penalties`);
- ``corruption``, ``corruption_level``: a denoising autoencoder; while training x_tilde is
  x with masking or Gaussian noise (:mod:`corruption`) and the loss still compares x_hat
  with the clean x. Evaluation always reads clean inputs.

The task reads only the inputs ``x``, never labels, so it runs on unlabelled data as well.
It reports the loss (the minimized objective) and the per-example ``mse`` over all D input
features, plus ``sparsity`` (Omega) and ``code_mean`` (the mean code activation) when a
sparsity penalty is on. After a run it draws test inputs above their reconstructions
(``reconstructions.png``), compares the test variance explained with PCA's for the same K,
and, when the data set held classes out of training (``info["holdout_classes"]``), scores
test examples by reconstruction error as anomalies (:mod:`anomaly`).
"""

import dataclasses
import math
import pathlib
from collections.abc import Callable
from typing import ClassVar, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import Field, PositiveInt, model_validator

from dlcore.config.errors import FieldError
from dlcore.config.section import one_of
from dlcore.data.dataset import Dataset, DataSpec, FieldSpec
from dlcore.data.needs import Need, first_unmet
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.losses import LOSSES, TASK_LOSSES, mean_squared_error, reduce_loss
from dlcore.tasks.anomaly import holdout_report
from dlcore.tasks.autoencoder_penalties import CODE_ACTIVATIONS, Sparsity
from dlcore.tasks.autoencoder_report import (
    pca_variance_explained,
    plot_reconstructions,
    variance_explained,
)
from dlcore.tasks.base import apply_model
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.corruption import CORRUPTIONS, Corruption, check_corruption_level, make_corruption
from dlcore.tasks.tied_weights import check_mirrored, drop_kernels, tied_decoder_params

PerExample = Callable[[jax.Array, jax.Array], jax.Array]  # (reconstruction, x) -> [B]
INPUTS = Need("x", ("features",), "real-valued inputs to reconstruct")
ROLES = ("encoder", "decoder")
_REPORT_EXAMPLES = 10
_REPORT_BATCH = 1024  # bounds the memory of reconstructing a large test split at once
_DEFAULT_TARGET = 0.05  # rho of the KL sparsity term


class Objective(NamedTuple):
    """What :meth:`AutoencoderTask.objective` returns besides the scalar it minimizes.

    Attributes:
      per_example: the reconstruction loss of each example ``[B]`` (without Omega).
      x_hat: the reconstruction, shaped like ``x``.
      code: the codes z ``[B, K]`` (after the code activation).
      penalty: Omega(z), a scalar (0 without a sparsity penalty).
      model_state: the updated model state.
    """

    per_example: jax.Array
    x_hat: jax.Array
    code: jax.Array
    penalty: jax.Array
    model_state: dict


@dataclasses.dataclass(frozen=True)
class AutoencoderTask(TaskDefaults):
    """Trains ``decoder(encoder(x))`` to reproduce ``x`` (see the module docstring).

    Batches are dicts with ``x`` and optionally ``mask`` (``[B]``, 1 for real examples, 0
    for padding); any other field (labels) is ignored. Dropout keys come from
    ``state.step_key("encoder/dropout")`` and ``state.step_key("decoder/dropout")``, the
    corruption's from ``state.step_key("corruption")``, so a run is reproducible and
    resumes exactly; batch statistics live in ``state.model_state[role]`` for the roles
    that have them.

    Attributes:
      encoder: Flax module ``encoder(x, train=bool) -> [B, bottleneck]``.
      decoder: Flax module ``decoder(z, train=bool) -> [B, prod(shape(x))]``.
      optimizer: the one optax chain over both models' parameters.
      bottleneck: K, the code width the encoder must output.
      loss: per-example loss ``(x_hat, x) -> [B]``; its masked mean is minimized.
      image_shape: how to draw one example in ``report`` (``[8, 8]`` for digits); None or
        a shape that does not fit ``x`` draws examples as rows of numbers.
      tied: the decoder's kernels are the encoder's transposed (two mirrored MLPs); the
        decoder's stored parameters then hold no kernels.
      code_activation: a name in ``CODE_ACTIVATIONS`` applied to the encoder's output.
      sparsity: the penalty Omega on the codes, or None.
      corruption: ``(key, x) -> x_tilde`` applied to training inputs, or None.

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
    tied: bool = False
    code_activation: str = "none"
    sparsity: Sparsity | None = None
    corruption: Corruption | None = None
    metric_modes: dict[str, Mode] = dataclasses.field(
        default_factory=lambda: {"loss": "min", "mse": "min"}
    )
    default_metric: str = "mse"

    def __post_init__(self):
        if self.sparsity is not None:  # the penalty's own metrics (see _metric_sums)
            modes = {**self.metric_modes, "sparsity": "min", "code_mean": "min"}
            object.__setattr__(self, "metric_modes", modes)

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        k_enc, k_dec, k_dropout, k_state = jax.random.split(rng, 4)
        x = batch["x"]
        enc = dict(self.encoder.init({"params": k_enc, "dropout": k_dropout}, x, train=False))
        z_BxK = self.encoder.apply(enc, x, train=False)
        self._check_code(z_BxK, x)
        dec = dict(self.decoder.init({"params": k_dec, "dropout": k_dropout}, z_BxK, train=False))
        params = {"encoder": enc.pop("params"), "decoder": dec.pop("params")}
        if self.tied:  # the decoder borrows the encoder's kernels; it stores only the rest
            params["decoder"] = drop_kernels(params["decoder"])
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

    def _apply(self, role: str, state: TrainState, role_params, h: jax.Array, train: bool):
        module = self.encoder if role == "encoder" else self.decoder
        key = state.step_key(f"{role}/dropout") if train else None
        return apply_model(module, role_params, state.model_state.get(role, {}), h, key)

    def decoder_params(self, params) -> dict:
        """The tree the decoder module applies: its own, or with the encoder's kernels
        transposed in when tied."""
        if self.tied:
            return tied_decoder_params(params["encoder"], params["decoder"])
        return params["decoder"]

    def reconstruct(
        self, state: TrainState, params, x: jax.Array, train: bool = False
    ) -> tuple[jax.Array, jax.Array, dict]:
        """x_hat = reshape(g(a(f(x))), shape(x)) (no corruption: callers pass x_tilde).

        Args:
          state: supplies model state (batch statistics) and the step's dropout keys.
          params: ``{"encoder": ..., "decoder": ...}`` (differentiated in training).
          x: inputs ``[B, ...]``.
          train: dropout on and batch statistics updated.

        Returns:
          ``(x_hat, z_BxK, model_state)``: the reconstruction shaped like ``x``, the codes
          after the code activation, and the updated model state.
        """
        f_BxK, enc_state = self._apply("encoder", state, params["encoder"], x, train)
        self._check_code(f_BxK, x)
        z_BxK = CODE_ACTIVATIONS[self.code_activation](f_BxK)
        dec_params = self.decoder_params(params)
        flat_BxD, dec_state = self._apply("decoder", state, dec_params, z_BxK, train)
        size = math.prod(x.shape[1:])
        if flat_BxD.shape != (x.shape[0], size):
            raise ValueError(
                f"the decoder must output [B, {size}] (the size of one input); got "
                f"{tuple(flat_BxD.shape)}"
            )
        model_state = {role: s for role, s in (("encoder", enc_state), ("decoder", dec_state)) if s}
        return flat_BxD.reshape(x.shape), z_BxK, model_state

    def objective(self, params, state: TrainState, batch: Batch, train: bool = True):
        """The minimized scalar: the masked mean of ``loss(x_hat_i, x_i)`` plus Omega(z),
        with x_hat rebuilt from the corrupted x_tilde when training a denoising model.

        Returns:
          ``(scalar, Objective)``.
        """
        x, mask_B = batch["x"], batch.get("mask")
        x_in = x
        if train and self.corruption is not None:
            x_in = self.corruption(state.step_key("corruption"), x)
        x_hat, z_BxK, model_state = self.reconstruct(state, params, x_in, train)
        per_example_B = self.loss(x_hat, x)  # against the CLEAN inputs
        scalar = reduce_loss(per_example_B, mask_B)
        penalty = jnp.zeros((), scalar.dtype)
        if self.sparsity is not None:
            penalty = self.sparsity(z_BxK, mask_B)
            scalar = scalar + penalty
        return scalar, Objective(per_example_B, x_hat, z_BxK, penalty, model_state)

    def _metric_sums(self, out: Objective, batch: Batch) -> Metrics:
        mask_B = batch.get("mask", jnp.ones_like(out.per_example))
        count = jnp.sum(mask_B)
        sums = {
            "loss": jnp.sum(out.per_example * mask_B),
            "mse": jnp.sum(mean_squared_error(out.x_hat, batch["x"]) * mask_B),
            "count": count,
        }
        if self.sparsity is not None:
            # Omega is a batch statistic (rho_hat), so its "sum" is Omega times the batch's
            # examples: the logged mean is then Omega averaged over batches by their size.
            sums["loss"] = sums["loss"] + out.penalty * count
            sums["sparsity"] = out.penalty * count
            sums["code_mean"] = jnp.sum(jnp.mean(out.code, axis=1) * mask_B)
        return sums

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        grads, out = jax.grad(self.objective, has_aux=True)(state.params, state, batch, True)
        new_state = apply_gradients(state, self.optimizer, grads)
        new_state = new_state.replace(step=state.step + 1, model_state=out.model_state)
        return new_state, self._metric_sums(out, batch)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        _, out = self.objective(state.params, state, batch, train=False)
        return self._metric_sums(out, batch)

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """Draws ``reconstructions.png`` (test inputs above their reconstructions) and
        returns the test MSE, the fraction of the test variance around the training mean
        that the reconstructions explain, 1 - SSE / SST, and PCA's fraction with K
        components (``pca_test_variance_explained``, the best a linear code can do).
        When the data set held classes out of training, adds the anomaly figures of
        :func:`dlcore.tasks.anomaly.holdout_report` and ``anomaly_scores.png``."""
        x = np.asarray(data.test.x)
        run = jax.jit(lambda s, x: self.reconstruct(s, s.params, x)[0])
        x_hat = np.concatenate(
            [
                np.asarray(run(state, x[i : i + _REPORT_BATCH]))
                for i in range(0, len(x), _REPORT_BATCH)
            ]
        )
        err = (x_hat - x).astype(np.float64) ** 2
        train_x = np.asarray(data.train.x)
        plot_reconstructions(
            x[:_REPORT_EXAMPLES],
            x_hat[:_REPORT_EXAMPLES],
            self.image_shape,
            directory / "reconstructions.png",
        )
        figures = {
            "test_mse": float(err.mean()),
            "test_variance_explained": variance_explained(x, x_hat, train_x.mean(axis=0)),
            "pca_test_variance_explained": pca_variance_explained(train_x, x, self.bottleneck),
        }
        holdout = data.info.get("holdout_classes")
        if holdout:
            scores_N = err.reshape(len(x), -1).mean(axis=1)
            figures.update(holdout_report(scores_N, np.asarray(data.test.y), holdout, directory))
        return figures


class AutoencoderConfig(TaskSection):
    """Reconstruct x through a ``bottleneck``-wide code: ``[models.encoder]`` reads x and
    outputs the code, ``[models.decoder]`` maps it back; one ``[optimizer]`` trains both.
    Labels are never read. Options make it tied, sparse or denoising (module docstring)."""

    model_roles: ClassVar[tuple[str, ...]] = ROLES
    optimizer_roles: ClassVar[tuple[str, ...]] = ("model",)  # one chain over both models

    name: Literal["autoencoder"] = "autoencoder"
    bottleneck: PositiveInt = 16
    loss: one_of(TASK_LOSSES["reconstruction"], "reconstruction loss") = "mse"
    tied: bool = Field(False, description="decoder kernels = encoder kernels transposed")
    code_activation: one_of(CODE_ACTIVATIONS, "code_activation") = "none"
    sparsity_l1: float = Field(0.0, ge=0.0, description="lambda: L1 on code activations")
    sparsity_kl: float = Field(0.0, ge=0.0, description="beta: KL to the target rate")
    sparsity_target: float = Field(_DEFAULT_TARGET, gt=0.0, lt=1.0, description="rho: target rate")
    corruption: one_of(("none", *CORRUPTIONS), "corruption") = "none"
    corruption_level: float | None = Field(
        None, gt=0.0, description="masking: drop probability p; gaussian: noise std sigma"
    )

    @model_validator(mode="after")
    def _consistent(self):
        if self.sparsity_kl > 0 and self.code_activation != "sigmoid":
            raise ValueError(
                "sparsity_kl needs code_activation = 'sigmoid' (a rate needs codes in (0, 1)); "
                f"got code_activation = {self.code_activation!r}"
            )
        # Compared with the default, not with model_fields_set: a saved run's config.toml
        # spells every default out, and must load again for resume and eval.
        if self.sparsity_target != _DEFAULT_TARGET and self.sparsity_kl == 0:
            raise ValueError("sparsity_target is the KL term's rate: set sparsity_kl > 0 too")
        check_corruption_level(self.corruption, self.corruption_level)
        return self

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
        if self.tied:
            check_mirrored(ctx.model_section("encoder"), ctx.model_section("decoder"))
        decoder = ctx.model(math.prod(x.shape), "decoder", reads_data=False)
        shape = ctx.data.info.get("image_shape")
        sparse = self.sparsity_l1 > 0 or self.sparsity_kl > 0
        return AutoencoderTask(
            encoder,
            decoder,
            ctx.optimizer(),
            self.bottleneck,
            LOSSES[self.loss],
            tuple(shape) if shape else None,
            tied=self.tied,
            code_activation=self.code_activation,
            sparsity=(
                Sparsity(self.sparsity_l1, self.sparsity_kl, self.sparsity_target)
                if sparse
                else None
            ),
            corruption=make_corruption(self.corruption, self.corruption_level or 0.0),
        )
