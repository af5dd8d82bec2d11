"""Generative adversarial networks (Goodfellow et al. 2014) as a task of the generic loop.

A generator G maps noise z ~ N(0, I) to samples; a discriminator D maps a sample to a
number l (a logit: D(x) = sigmoid(l(x)), the probability that x is real). The two play

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))].

Each player minimises its own loss, a pair (L_D, L_G) chosen by ``[task] loss`` from
:mod:`dlcore.tasks.gan_losses`: ``minimax`` (the game above), ``non_saturating`` (the
default, L_G = -log D(G(z))), ``least_squares`` (LSGAN) or ``hinge``; optionally with
one-sided label smoothing of the real targets.

One ``train_step`` makes ``d_steps`` updates of D, then one of G through the *updated* D,
each player with its own optax chain; the step counter moves once. Every D update sees the
step's real batch and fakes of fresh noise (an epoch thus has as many G updates as batches
and ``d_steps`` times as many D updates; the batch order is the loop's, unchanged).

x may have any shape, e.g. ``[H, W, C]`` images: the generator's ``prod(x_shape)`` outputs
are reshaped to it. For pixels in [0, 1], ``generator_output = "sigmoid"`` squashes an
MLP generator's linear output into that range (a model with its own output activation,
such as ``dcgan_generator``, keeps the default ``"linear"``). After each validation pass a
run on images writes ``snapshots/samples_epochNNNN.png``, a grid of 64 samples of the same
noise every time (2-D points get the report's scatter); the report scores the samples with
:func:`dlcore.quality.sample_quality` (mode coverage, Fréchet distance).
"""

import dataclasses
import math
import pathlib
from typing import Any, ClassVar, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import Field, PositiveInt

from dlcore.config.errors import FieldError
from dlcore.config.section import one_of
from dlcore.data.dataset import Dataset
from dlcore.data.needs import Need
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.quality import FeatureNet, QualityFields, near_modes, quality_net, sample_quality
from dlcore.tasks.base import apply_role
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.gan_losses import LOSSES

ROLES = ("generator", "discriminator")
# "sigmoid" squashes the generator's output into (0, 1), the range of pixel data.
GENERATOR_OUTPUTS = ("linear", "sigmoid")
# The per-step keys of one D update (each D step of d_steps > 1 gets its own split of them).
D_KEYS = ("d_noise", "g_dropout_d", "d_dropout", "d_dropout_fake")
# fold_in constants of the key streams that do not depend on the step: eval, report and
# snapshots must be pure functions of the state, so they draw the same noise every time.
EVAL_STREAM = 12345
REPORT_STREAM = 54321
SNAPSHOT_STREAM = 67890
REPORT_SAMPLES = 2000
SNAPSHOT_SAMPLES = 64


@dataclasses.dataclass(frozen=True)
class GANTask(TaskDefaults):
    """A GAN; see the module docstring for the objective and the step.

    Batches hold ``x`` (real samples) and, for eval, optionally ``mask`` (``[B]``, 1 real,
    0 padding). Parameters and optimizer states are ``{"generator": ..., "discriminator":
    ...}``; batch statistics, if a model keeps any, go to ``model_state`` under the same
    keys. Per-step keys: ``D_KEYS`` (split ``d_steps`` ways when d_steps > 1), ``g_noise``
    and the generator update's dropout.

    Attributes:
      generator: module ``z [B, latent_dim] -> [B, prod(x_shape)]`` (reshaped to x).
      discriminator: module ``x -> [B, 1]`` (logits or scores).
      g_optimizer: the generator's optax chain.
      d_optimizer: the discriminator's optax chain.
      latent_dim: width of the noise z.
      x_shape: per-example shape of ``x``.
      modes: known mode centres of the data (``[K, D]`` as nested tuples), or None.
      mode_std: per-coordinate std of each mode (with ``modes``).
      loss: a key of :data:`dlcore.tasks.gan_losses.LOSSES`.
      label_smoothing: one-sided smoothing s of the real targets (not with hinge).
      d_steps: D updates per G update, all in one step.
      generator_output: ``"linear"`` or ``"sigmoid"`` (applied to G's output).
      quality: the Fréchet distance's feature net, or None.

    Example:
      >>> task = GANTask(MLP((128,), 2), MLP((128,), 1), optax.adam(1e-3),
      ...                optax.adam(1e-3), latent_dim=2, x_shape=(2,), loss="hinge")
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_Bx2})
      >>> state, sums = jax.jit(task.train_step)(state, {"x": x_Bx2})
      >>> float(sums["d_loss"] / sums["count"])   # batch mean of L_D
    """

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: optax.GradientTransformation
    d_optimizer: optax.GradientTransformation
    latent_dim: int
    x_shape: tuple[int, ...]
    modes: tuple[tuple[float, ...], ...] | None = None
    mode_std: float | None = None
    loss: str = "non_saturating"
    label_smoothing: float = 0.0
    d_steps: int = 1
    generator_output: str = "linear"
    quality: FeatureNet | None = dataclasses.field(default=None, compare=False)

    @property
    def metric_modes(self) -> dict[str, Mode]:
        # Both losses are adversarial: "min" is nominal, a low d_loss can mean a bad G.
        modes: dict[str, Mode] = {"d_loss": "min", "g_loss": "min"}
        if self.modes is not None:
            modes["high_quality"] = "max"
        return modes

    @property
    def default_metric(self) -> str:
        """``high_quality`` when the data know their modes; otherwise no metric measures
        sample quality and ``g_loss`` (how well G fools the current D) stands in."""
        return "high_quality" if self.modes is not None else "g_loss"

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        k_g, k_d, k_state = jax.random.split(rng, 3)
        z_BxZ = jnp.zeros((batch["x"].shape[0], self.latent_dim), jnp.float32)
        # the same key for params and init-time dropout, as model.init needs both
        g_vars = dict(self.generator.init({"params": k_g, "dropout": k_g}, z_BxZ, train=False))
        d_vars = dict(
            self.discriminator.init({"params": k_d, "dropout": k_d}, batch["x"], train=False)
        )
        params = {"generator": g_vars.pop("params"), "discriminator": d_vars.pop("params")}
        # Only models with batch statistics get an entry: empty subtrees need not be saved.
        model_state = {r: v for r, v in zip(ROLES, (g_vars, d_vars), strict=True) if v}
        opt_state = {
            "generator": self.g_optimizer.init(params["generator"]),
            "discriminator": self.d_optimizer.init(params["discriminator"]),
        }
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state=model_state,
            opt_state=opt_state,
            rng=k_state,
        )

    def _apply(self, role: str, params, model_state: dict, inputs, key) -> tuple[Any, dict]:
        """Runs ``role`` in training mode (``key`` not None) or eval mode; returns its output
        and the model state with that role's batch statistics updated."""
        module = self.generator if role == "generator" else self.discriminator
        return apply_role(module, role, params, model_state, inputs, key)

    def _generate(self, params, model_state, z_BxZ, key) -> tuple[jax.Array, dict]:
        flat_BxF, model_state = self._apply("generator", params, model_state, z_BxZ, key)
        if self.generator_output == "sigmoid":
            flat_BxF = jax.nn.sigmoid(flat_BxF)
        return flat_BxF.reshape(z_BxZ.shape[0], *self.x_shape), model_state

    def _logits(self, params, model_state, x, key) -> tuple[jax.Array, dict]:
        logits_Bx1, model_state = self._apply("discriminator", params, model_state, x, key)
        return logits_Bx1[:, 0], model_state

    def _noise(self, key: jax.Array, batch_size: int) -> jax.Array:
        return jax.random.normal(key, (batch_size, self.latent_dim), jnp.float32)

    def _d_loss(self, real_B: jax.Array, fake_B: jax.Array) -> jax.Array:
        return LOSSES[self.loss].discriminator(real_B, fake_B, self.label_smoothing)

    def _d_update(self, state: TrainState, model_state: dict, batch: Batch, keys: dict):
        """One D update on the real batch and fakes of the current G (a constant here);
        returns the state, the model state and the per-example L_D ``[B]``."""
        x_real, mask_B = batch["x"], batch["mask"]
        count = jnp.maximum(jnp.sum(mask_B), 1.0)
        z_BxZ = self._noise(keys["d_noise"], x_real.shape[0])
        x_fake, model_state = self._generate(
            state.params["generator"], model_state, z_BxZ, keys["g_dropout_d"]
        )
        x_fake = jax.lax.stop_gradient(x_fake)

        def d_objective(d_params):
            real_B, ms = self._logits(d_params, model_state, x_real, keys["d_dropout"])
            fake_B, ms = self._logits(d_params, ms, x_fake, keys["d_dropout_fake"])
            loss_B = self._d_loss(real_B, fake_B)
            return jnp.sum(loss_B * mask_B) / count, (loss_B, ms)

        d_grads, (d_loss_B, model_state) = jax.grad(d_objective, has_aux=True)(
            state.params["discriminator"]
        )
        state = apply_gradients(state, self.d_optimizer, d_grads, "discriminator")
        return state, model_state, d_loss_B

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        """``d_steps`` D updates (reported ``d_loss``: their mean), then one G update."""
        x_real = batch["x"]
        b = x_real.shape[0]
        mask_B = batch.get("mask", jnp.ones((b,), jnp.float32))
        count = jnp.maximum(jnp.sum(mask_B), 1.0)
        real = {"x": x_real, "mask": mask_B}

        # 1) D: with one D step, the step's own keys (the original single-update step).
        if self.d_steps == 1:
            keys = {name: state.step_key(name) for name in D_KEYS}
            state, model_state, d_loss_B = self._d_update(state, state.model_state, real, keys)
        else:
            split = {name: jax.random.split(state.step_key(name), self.d_steps) for name in D_KEYS}

            def d_step(i, carry):
                st, ms, total_B = carry
                st, ms, loss_B = self._d_update(st, ms, real, {n: k[i] for n, k in split.items()})
                return st, ms, total_B + loss_B

            zeros_B = jnp.zeros((b,), jnp.float32)
            carry = (state, state.model_state, zeros_B)
            state, model_state, d_loss_B = jax.lax.fori_loop(0, self.d_steps, d_step, carry)
            d_loss_B = d_loss_B / self.d_steps
        d_params = state.params["discriminator"]

        # 2) G through the updated D, on fresh noise; only G's parameters move.
        def g_objective(g_params):
            z_BxZ = self._noise(state.step_key("g_noise"), b)
            x_gen, ms = self._generate(g_params, model_state, z_BxZ, state.step_key("g_dropout"))
            fake_B, ms = self._logits(d_params, ms, x_gen, state.step_key("d_dropout_g"))
            loss_B = LOSSES[self.loss].generator(fake_B)
            return jnp.sum(loss_B * mask_B) / count, (loss_B, ms)

        g_grads, (g_loss_B, model_state) = jax.grad(g_objective, has_aux=True)(
            state.params["generator"]
        )
        state = apply_gradients(state, self.g_optimizer, g_grads, "generator")
        state = state.replace(step=state.step + 1, model_state=model_state)
        metrics = {
            "d_loss": jnp.sum(d_loss_B * mask_B),
            "g_loss": jnp.sum(g_loss_B * mask_B),
            "count": jnp.sum(mask_B),
        }
        return state, metrics

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        """The two losses on one fake per real example (eval mode, noise from a fixed
        stream of ``state.rng``), and ``high_quality`` sums when the modes are known."""
        x_real = batch["x"]
        b = x_real.shape[0]
        mask_B = batch.get("mask", jnp.ones((b,), jnp.float32))
        z_BxZ = self._noise(jax.random.fold_in(state.rng, EVAL_STREAM), b)
        x_fake, _ = self._generate(state.params["generator"], state.model_state, z_BxZ, None)
        d_params = state.params["discriminator"]
        real_B, _ = self._logits(d_params, state.model_state, x_real, None)
        fake_B, _ = self._logits(d_params, state.model_state, x_fake, None)
        metrics = {
            "d_loss": jnp.sum(self._d_loss(real_B, fake_B) * mask_B),
            "g_loss": jnp.sum(LOSSES[self.loss].generator(fake_B) * mask_B),
            "count": jnp.sum(mask_B),
        }
        if self.modes is not None:
            near_BxK = near_modes(x_fake.reshape(b, -1), jnp.asarray(self.modes), self.mode_std)
            metrics["high_quality"] = jnp.sum(jnp.any(near_BxK, axis=1) * mask_B)
        return metrics

    def sample(self, state: TrainState, n: int, key: jax.Array) -> jax.Array:
        """``n`` generated samples ``[n, *x_shape]`` (eval mode) from noise drawn with ``key``."""
        z_NxZ = self._noise(key, n)
        return self._generate(state.params["generator"], state.model_state, z_NxZ, None)[0]

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """Scores max(``REPORT_SAMPLES``, test size) samples with
        :func:`dlcore.quality.sample_quality` and writes ``samples.png`` (a scatter over
        the training data for 2-D data, a grid of 64 for images).

        Returns:
          ``modes_covered``, ``high_quality`` when the data know their modes (a mode is
          covered when >= 1% of the samples lie within 3 std of it); ``frechet_distance``,
          ``frechet_floor``, ``frechet_samples`` with a ``quality_classifier``.
        """
        from dlcore.tasks.gan_pictures import save_samples  # matplotlib only when drawing

        n = max(REPORT_SAMPLES, len(data.test.x))
        x_N = np.asarray(self.sample(state, n, jax.random.fold_in(state.rng, REPORT_STREAM)))
        scores = sample_quality(x_N, data, self.quality)
        save_samples(pathlib.Path(directory) / "samples.png", x_N, data, scores)
        return scores

    def snapshot(self, state: TrainState, data: Dataset, directory: pathlib.Path, epoch: int):
        """``samples_epoch{epoch:04d}.png`` for image data: a grid of ``SNAPSHOT_SAMPLES``
        samples of the same noise every epoch, so the grids of a run compare. 2-D points
        get only the report's scatter (one per epoch would cost ring_gan ~20% of its time)."""
        from dlcore.tasks.gan_pictures import picture_kind, save_samples

        if picture_kind(data, self.x_shape) != "grid":
            return
        key = jax.random.fold_in(state.rng, SNAPSHOT_STREAM)
        x_N = np.asarray(self.sample(state, SNAPSHOT_SAMPLES, key))
        save_samples(pathlib.Path(directory) / f"samples_epoch{epoch:04d}.png", x_N, data, {})


class GANConfig(QualityFields, TaskSection):
    """A GAN: ``[models.generator]`` maps noise to samples of ``x``, ``[models.discriminator]``
    scores them; each has its own chain (``[optimizers.NAME]``, else ``[optimizer]``).

    ``loss`` picks the pair of :mod:`dlcore.tasks.gan_losses`; ``label_smoothing`` (one-sided,
    real target 1 - s) applies to minimax, non_saturating and least_squares and is refused
    with hinge; it is part of the eval ``d_loss`` too. ``d_steps`` D updates per G update
    reuse the step's real batch with fresh noise each."""

    model_roles: ClassVar[tuple[str, ...]] = ROLES
    optimizer_roles: ClassVar[tuple[str, ...]] = ROLES

    name: Literal["gan"] = "gan"
    latent_dim: PositiveInt = 2
    loss: one_of(LOSSES, "GAN loss") = Field(
        "non_saturating", description="minimax, non_saturating, least_squares or hinge"
    )
    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="one-sided: D's real target is 1 - label_smoothing (not with hinge)",
    )
    d_steps: PositiveInt = Field(1, description="discriminator updates per generator update")
    generator_output: one_of(GENERATOR_OUTPUTS, "generator_output") = Field(
        "linear", description="sigmoid: samples in (0, 1), e.g. for pixels in [0, 1]"
    )

    def needs(self) -> tuple[Need, ...]:
        return (Need("x", ("features",), "real-valued samples to imitate"),)

    def build(self, ctx: BuildContext) -> GANTask:
        if self.label_smoothing and not LOSSES[self.loss].smoothable:
            raise FieldError(
                "task.label_smoothing",
                f"the {self.loss} loss has no targets to smooth; set label_smoothing = 0 "
                "or use minimax, non_saturating or least_squares",
            )
        own_output = getattr(ctx.model_section("generator"), "output", None)
        if self.generator_output == "sigmoid" and own_output not in (None, "linear"):
            raise FieldError(
                "task.generator_output",
                f"the generator already applies output = {own_output!r}; a second sigmoid "
                "would squash its samples into (0.5, 0.73): keep generator_output = 'linear'",
            )
        x_shape = tuple(ctx.data.fields["x"].shape)
        generator = ctx.model(math.prod(x_shape), "generator", reads_data=False)
        discriminator = ctx.model(1, "discriminator")
        modes, std = ctx.data.info.get("modes"), ctx.data.info.get("mode_std")
        if modes is not None and (std is None or any(len(m) != math.prod(x_shape) for m in modes)):
            raise ValueError(
                f"{ctx.data.name}: info['modes'] must be points of x's width {math.prod(x_shape)} "
                "with a 'mode_std'; got other widths or no std"
            )
        return GANTask(
            generator=generator,
            discriminator=discriminator,
            g_optimizer=ctx.optimizer("generator"),
            d_optimizer=ctx.optimizer("discriminator"),
            latent_dim=self.latent_dim,
            x_shape=x_shape,
            modes=None if modes is None else tuple(tuple(map(float, m)) for m in modes),
            mode_std=None if std is None else float(std),
            loss=self.loss,
            label_smoothing=self.label_smoothing,
            d_steps=self.d_steps,
            generator_output=self.generator_output,
            quality=quality_net(self, ctx.data),
        )
