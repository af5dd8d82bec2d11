"""Generative adversarial networks (Goodfellow et al. 2014) as a task of the generic loop.

A generator G maps noise z ~ N(0, I) to samples; a discriminator D maps a sample to a
logit l, with D(x) = sigmoid(l(x)) the probability that x is real. The two play

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))].

D ascends this value; as a loss it minimises the binary cross-entropy

    L_D = -log D(x) - log(1 - D(G(z))) = -log sigmoid(l(x)) - log sigmoid(-l(G(z))).

G uses the *non-saturating* loss, which has the same fixed point but strong gradients
while D still rejects its samples (where log(1 - D(G(z))) is flat):

    L_G = -log D(G(z)) = -log sigmoid(l(G(z))).

One ``train_step`` makes both updates: D on a real batch and as many fakes, then G
through the *updated* D, each with its own optax chain; the step counter moves once.
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
from pydantic import PositiveInt

from dlcore.data.dataset import Dataset
from dlcore.data.needs import Need
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.quality.modes import mode_scores, near_modes
from dlcore.tasks.base import apply_model
from dlcore.tasks.context import BuildContext, TaskSection

ROLES = ("generator", "discriminator")
# fold_in constants of the key streams that do not depend on the step: eval and report
# must be pure functions of the state, so they draw the same noise every time.
EVAL_STREAM = 12345
REPORT_STREAM = 54321
REPORT_SAMPLES = 2000


def discriminator_loss(real_logits_B: jax.Array, fake_logits_B: jax.Array) -> jax.Array:
    """Per-example ``L_D = -log sigmoid(l_real) - log sigmoid(-l_fake)``, shape ``[B]``.

    Written with ``log_sigmoid``, which is exact for large |l| where
    ``log(sigmoid(l))`` would underflow to ``log(0)``.
    """
    return -jax.nn.log_sigmoid(real_logits_B) - jax.nn.log_sigmoid(-fake_logits_B)


def generator_loss(fake_logits_B: jax.Array) -> jax.Array:
    """Per-example non-saturating ``L_G = -log sigmoid(l_fake)``, shape ``[B]``."""
    return -jax.nn.log_sigmoid(fake_logits_B)


@dataclasses.dataclass(frozen=True)
class GANTask(TaskDefaults):
    """A GAN with the non-saturating loss; see the module docstring for the objective.

    Batches hold ``x`` (real samples) and, for eval, optionally ``mask`` (``[B]``, 1 real,
    0 padding). Parameters and optimizer states are ``{"generator": ..., "discriminator":
    ...}``; batch statistics, if a model keeps any, go to ``model_state`` under the same
    keys. Per-step keys: ``d_noise``, ``g_noise`` and the two models' dropout.

    Attributes:
      generator: module ``z [B, latent_dim] -> [B, prod(x_shape)]`` (reshaped to x).
      discriminator: module ``x -> [B, 1]`` logits.
      g_optimizer: the generator's optax chain.
      d_optimizer: the discriminator's optax chain.
      latent_dim: width of the noise z.
      x_shape: per-example shape of ``x``.
      modes: known mode centres of the data (``[K, D]`` as nested tuples), or None.
      mode_std: per-coordinate std of each mode (with ``modes``).

    Example:
      >>> task = GANTask(MLP((128,), 2), MLP((128,), 1), optax.adam(1e-3),
      ...                optax.adam(1e-3), latent_dim=2, x_shape=(2,))
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
        out, updated = apply_model(module, params, model_state.get(role, {}), inputs, key)
        if key is None or role not in model_state:
            return out, model_state
        return out, {**model_state, role: updated}

    def _generate(self, params, model_state, z_BxZ, key) -> tuple[jax.Array, dict]:
        flat_BxF, model_state = self._apply("generator", params, model_state, z_BxZ, key)
        return flat_BxF.reshape(z_BxZ.shape[0], *self.x_shape), model_state

    def _logits(self, params, model_state, x, key) -> tuple[jax.Array, dict]:
        logits_Bx1, model_state = self._apply("discriminator", params, model_state, x, key)
        return logits_Bx1[:, 0], model_state

    def _noise(self, key: jax.Array, batch_size: int) -> jax.Array:
        return jax.random.normal(key, (batch_size, self.latent_dim), jnp.float32)

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        x_real = batch["x"]
        b = x_real.shape[0]
        mask_B = batch.get("mask", jnp.ones((b,), jnp.float32))
        count = jnp.maximum(jnp.sum(mask_B), 1.0)
        g_params = state.params["generator"]

        # 1) D on real x and fakes of the current G; G is a constant here.
        z_BxZ = self._noise(state.step_key("d_noise"), b)
        x_fake, model_state = self._generate(
            g_params, state.model_state, z_BxZ, state.step_key("g_dropout_d")
        )
        x_fake = jax.lax.stop_gradient(x_fake)

        def d_objective(d_params):
            real_B, ms = self._logits(d_params, model_state, x_real, state.step_key("d_dropout"))
            fake_B, ms = self._logits(d_params, ms, x_fake, state.step_key("d_dropout_fake"))
            loss_B = discriminator_loss(real_B, fake_B)
            return jnp.sum(loss_B * mask_B) / count, (loss_B, ms)

        d_grads, (d_loss_B, model_state) = jax.grad(d_objective, has_aux=True)(
            state.params["discriminator"]
        )
        state = apply_gradients(state, self.d_optimizer, d_grads, "discriminator")
        d_params = state.params["discriminator"]

        # 2) G through the updated D, on fresh noise; only G's parameters move.
        def g_objective(g_params):
            z_BxZ = self._noise(state.step_key("g_noise"), b)
            x_gen, ms = self._generate(g_params, model_state, z_BxZ, state.step_key("g_dropout"))
            fake_B, ms = self._logits(d_params, ms, x_gen, state.step_key("d_dropout_g"))
            loss_B = generator_loss(fake_B)
            return jnp.sum(loss_B * mask_B) / count, (loss_B, ms)

        g_grads, (g_loss_B, model_state) = jax.grad(g_objective, has_aux=True)(g_params)
        state = apply_gradients(state, self.g_optimizer, g_grads, "generator")
        state = state.replace(step=state.step + 1, model_state=model_state)
        metrics = {
            "d_loss": jnp.sum(d_loss_B * mask_B),
            "g_loss": jnp.sum(g_loss_B * mask_B),
            "count": jnp.sum(mask_B),
        }
        return state, metrics

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        """Losses on one fake per real example (eval mode, noise from a fixed stream of
        ``state.rng``), and ``high_quality`` sums when the modes are known."""
        x_real = batch["x"]
        b = x_real.shape[0]
        mask_B = batch.get("mask", jnp.ones((b,), jnp.float32))
        z_BxZ = self._noise(jax.random.fold_in(state.rng, EVAL_STREAM), b)
        x_fake, _ = self._generate(state.params["generator"], state.model_state, z_BxZ, None)
        d_params = state.params["discriminator"]
        real_B, _ = self._logits(d_params, state.model_state, x_real, None)
        fake_B, _ = self._logits(d_params, state.model_state, x_fake, None)
        metrics = {
            "d_loss": jnp.sum(discriminator_loss(real_B, fake_B) * mask_B),
            "g_loss": jnp.sum(generator_loss(fake_B) * mask_B),
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
        """Scores ``REPORT_SAMPLES`` samples against the known modes and writes
        ``samples.png`` (samples over the training data) for 2-D data.

        Returns:
          ``{"modes_covered", "high_quality"}`` when the data know their modes (a mode is
          covered when >= 1% of the samples lie within 3 std of it), else ``{}``.
        """
        key = jax.random.fold_in(state.rng, REPORT_STREAM)
        x_NxD = np.asarray(self.sample(state, REPORT_SAMPLES, key)).reshape(REPORT_SAMPLES, -1)
        scores = {}
        if self.modes is not None:
            scores = mode_scores(x_NxD, np.asarray(self.modes), self.mode_std)
        if x_NxD.shape[1] == 2:
            plot_samples(data.train.x, x_NxD, pathlib.Path(directory) / "samples.png", scores)
        return scores


def plot_samples(real_Nx2, fake_Mx2, path: pathlib.Path, scores: dict) -> None:
    """Scatter of generated points (red) over the real data (grey), as a PNG."""
    # The object API with the Agg canvas: no pyplot, no global backend state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(real_Nx2[:, 0], real_Nx2[:, 1], s=2, c="0.6", alpha=0.4, label="data")
    ax.scatter(fake_Mx2[:, 0], fake_Mx2[:, 1], s=2, c="tab:red", alpha=0.5, label="generated")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    title = ", ".join(f"{k} {v:.3g}" for k, v in scores.items())
    ax.set_title(title or "GAN samples")
    fig.savefig(path, dpi=100)


class GANConfig(TaskSection):
    """A GAN: ``[models.generator]`` maps noise to samples of ``x``, ``[models.discriminator]``
    scores them; each has its own chain (``[optimizers.NAME]``, else ``[optimizer]``)."""

    model_roles: ClassVar[tuple[str, ...]] = ROLES
    optimizer_roles: ClassVar[tuple[str, ...]] = ROLES

    name: Literal["gan"] = "gan"
    latent_dim: PositiveInt = 2

    def needs(self) -> tuple[Need, ...]:
        return (Need("x", ("features",), "real-valued samples to imitate"),)

    def build(self, ctx: BuildContext) -> GANTask:
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
        )
