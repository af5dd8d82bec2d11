"""The variational autoencoder (Kingma & Welling 2014) as a task of the generic loop.

An encoder (``[models.encoder]``, any model reading x: an MLP, or a CNN on images) outputs
2L numbers, the mean and log-variance of the Gaussian posterior q(z|x) = N(mu, diag sigma^2)
over an L-dimensional latent z (L = ``latent_dim``); a decoder (``[models.decoder]``, an
MLP, or ``dcgan_generator`` with ``output = "linear"`` for images) maps z to one output per
pixel of x. The model is p(z) = N(0, I) and p(x|z):

- ``likelihood = "bernoulli"``: the outputs are logits l, p(x|z) = prod_d Bern(x_d;
  sigmoid(l_d)); a proper likelihood for binary pixels (digits ``binarize = true``); on grey
  pixels in [0, 1] the same formula is the usual cross-entropy, not a normalised density.
- ``likelihood = "gaussian"``: the outputs are means m, p(x|z) = prod_d N(x_d; m_d, s^2)
  with one std s for all pixels: fixed (``gaussian_std``) or, when unset, learned as a
  scalar parameter ``params["likelihood"]["log_std"]`` (a shared s cannot collapse onto
  constant pixels the way a per-pixel variance would).

One ``[optimizer]`` chain over ``{"encoder", "decoder"(, "likelihood")}`` minimises, per
example, with z = mu + sigma * eps (eps ~ N(0, I), the reparameterisation),

    reconstruction = -log p(x | z),      kl = KL(q(z|x) || p(z))   (closed form)
    loss = reconstruction + beta * w(t) * kl,   w(t) = min(1, t / kl_warmup_steps)
    elbo = -(reconstruction + kl)        (the bound itself: beta = 1, no warm-up)

The report gives the importance-weighted bound (IWAE, ``iw_samples`` samples) of the test
log-likelihood, sample quality (:func:`dlcore.quality.sample_quality`) and the PNGs of
:mod:`dlcore.tasks.vae_report`.
"""

import dataclasses
import math
import pathlib
from typing import ClassVar, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from dlcore.config.errors import FieldError
from dlcore.config.section import one_of
from dlcore.data.dataset import Dataset, DataSpec, FieldSpec
from dlcore.data.needs import Need, first_unmet
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.quality import FeatureNet, QualityFields, quality_net
from dlcore.tasks.base import apply_role
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.vae_math import (
    bernoulli_log_likelihood,
    gaussian_log_density,
    gaussian_log_likelihood,
    importance_weighted_bound,
    kl_warmup_weight,
    reparameterize,
    standard_normal_kl,
)

ROLES = ("encoder", "decoder")
LIKELIHOODS = ("bernoulli", "gaussian")
# fold_in constant of eval's noise: eval must be a pure function of the state, so it
# draws the same noise every time (the report's streams: vae_report).
EVAL_STREAM = 23456


class Terms(NamedTuple):
    """The per-example ELBO terms of one batch and the model state after computing them."""

    reconstruction: jax.Array  # [B] -log p(x|z)
    kl: jax.Array  # [B] KL(q(z|x) || p(z))
    model_state: dict


@dataclasses.dataclass(frozen=True)
class VAETask(TaskDefaults):
    """A VAE; see the module docstring for the model and the objective.

    Batches hold ``x`` and, in eval, optionally ``mask`` (``[B]``, 1 real, 0 padding);
    labels are never read. Per-step keys: ``eps`` and the two models' dropout.

    Attributes:
      encoder: module ``x -> [B, 2 * latent_dim]`` (mean, then log-variance).
      decoder: module ``z [B, latent_dim] -> [B, prod(x_shape)]`` (or any shape of that size).
      optimizer: the one optax chain over all parameters.
      latent_dim: L.
      x_shape: per-example shape of ``x``.
      likelihood: ``"bernoulli"`` or ``"gaussian"``.
      gaussian_std: the Gaussian decoder's fixed std, or None to learn it.
      beta: weight of the KL term (beta-VAE; 1 is the ELBO).
      kl_warmup_steps: steps of the linear KL warm-up (0: none).
      iw_samples: K of the report's importance-weighted log-likelihood.
      image_shape: how to draw one example, or None for data that are not images.
      quality: the Fréchet distance's feature net, or None.

    Example:
      >>> task = VAETask(MLP((64,), 4), MLP((64,), 64), optax.adam(1e-3), 2, (64,))
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_Bx64})
      >>> state, sums = jax.jit(task.train_step)(state, {"x": x_Bx64})
      >>> float(sums["elbo"] / sums["count"])   # batch mean of the ELBO, nats
    """

    encoder: nn.Module
    decoder: nn.Module
    optimizer: optax.GradientTransformation
    latent_dim: int
    x_shape: tuple[int, ...]
    likelihood: str = "bernoulli"
    gaussian_std: float | None = None
    beta: float = 1.0
    kl_warmup_steps: int = 0
    iw_samples: int = 100
    image_shape: tuple[int, ...] | None = None
    quality: FeatureNet | None = dataclasses.field(default=None, compare=False)

    metric_modes: ClassVar[dict[str, Mode]] = {
        "loss": "min",
        "reconstruction": "min",
        "kl": "min",  # nominal: a tiny KL can mean an unused latent (posterior collapse)
        "elbo": "max",
    }
    default_metric: ClassVar[str] = "elbo"

    @property
    def learns_std(self) -> bool:
        return self.likelihood == "gaussian" and self.gaussian_std is None

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        k_enc, k_dec, k_state = jax.random.split(rng, 3)
        x = batch["x"]
        z_BxL = jnp.zeros((x.shape[0], self.latent_dim), jnp.float32)
        # the same key for params and init-time dropout, as model.init needs both
        enc = dict(self.encoder.init({"params": k_enc, "dropout": k_enc}, x, train=False))
        dec = dict(self.decoder.init({"params": k_dec, "dropout": k_dec}, z_BxL, train=False))
        params = {"encoder": enc.pop("params"), "decoder": dec.pop("params")}
        if self.learns_std:
            params["likelihood"] = {"log_std": jnp.zeros((), jnp.float32)}
        # Only roles with batch statistics get an entry: empty subtrees need not be saved.
        model_state = {r: v for r, v in zip(ROLES, (enc, dec), strict=True) if v}
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state=model_state,
            opt_state=self.optimizer.init(params),
            rng=k_state,
        )

    def _apply(self, role: str, params, model_state: dict, inputs, key) -> tuple[jax.Array, dict]:
        """Runs ``role`` in training mode (``key`` not None) or eval mode."""
        module = self.encoder if role == "encoder" else self.decoder
        return apply_role(module, role, params[role], model_state, inputs, key)

    def encode(self, params, model_state, x, key=None) -> tuple[jax.Array, jax.Array, dict]:
        """``(mu_BxL, logvar_BxL, model_state)`` of q(z|x); ``key``: training-mode dropout."""
        out, model_state = self._apply("encoder", params, model_state, x, key)
        if out.shape != (x.shape[0], 2 * self.latent_dim):
            raise ValueError(
                f"the encoder must output [B, {2 * self.latent_dim}] (2 * latent_dim: mean and "
                f"log-variance); got {tuple(out.shape)}"
            )
        return out[:, : self.latent_dim], out[:, self.latent_dim :], model_state

    def decode(self, params, model_state, z_BxL, key=None) -> tuple[jax.Array, dict]:
        """The decoder's outputs flattened to ``[B, D]`` (logits or Gaussian means)."""
        out, model_state = self._apply("decoder", params, model_state, z_BxL, key)
        size = math.prod(self.x_shape)
        if math.prod(out.shape[1:]) != size:
            raise ValueError(
                f"the decoder must output {size} values per example (the size of x "
                f"{list(self.x_shape)}); got {tuple(out.shape)}"
            )
        return out.reshape(z_BxL.shape[0], size), model_state

    def log_likelihood(self, params, out_BxD, x_BxD) -> jax.Array:
        """log p(x|z) ``[B]`` of flat x under the decoder's outputs."""
        if self.likelihood == "bernoulli":
            return bernoulli_log_likelihood(out_BxD, x_BxD)
        if self.learns_std:
            return gaussian_log_likelihood(out_BxD, params["likelihood"]["log_std"], x_BxD)
        return gaussian_log_likelihood(out_BxD, math.log(self.gaussian_std), x_BxD)

    def mean_image(self, out_BxD) -> jax.Array:
        """E[x|z] shaped like x: sigmoid of the logits, or the Gaussian means."""
        mean = jax.nn.sigmoid(out_BxD) if self.likelihood == "bernoulli" else out_BxD
        return mean.reshape(out_BxD.shape[0], *self.x_shape)

    def terms(self, params, model_state, x, eps_BxL, train: bool, state=None) -> Terms:
        """The ELBO's two terms for x with the noise ``eps_BxL`` (training mode draws the
        models' dropout from ``state``'s step keys)."""
        enc_key = state.step_key("encoder/dropout") if train else None
        dec_key = state.step_key("decoder/dropout") if train else None
        mu, logvar, model_state = self.encode(params, model_state, x, enc_key)
        z_BxL = reparameterize(mu, logvar, eps_BxL)
        out_BxD, model_state = self.decode(params, model_state, z_BxL, dec_key)
        recon_B = -self.log_likelihood(params, out_BxD, x.reshape(x.shape[0], -1))
        return Terms(recon_B, standard_normal_kl(mu, logvar), model_state)

    def _sums(self, terms: Terms, kl_weight, mask_B) -> Metrics:
        loss_B = terms.reconstruction + self.beta * kl_weight * terms.kl
        return {
            "loss": jnp.sum(loss_B * mask_B),
            "reconstruction": jnp.sum(terms.reconstruction * mask_B),
            "kl": jnp.sum(terms.kl * mask_B),
            "elbo": -jnp.sum((terms.reconstruction + terms.kl) * mask_B),
            "count": jnp.sum(mask_B),
        }

    def _noise(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        return jax.random.normal(key, (*shape, self.latent_dim), jnp.float32)

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        x = batch["x"]
        mask_B = batch.get("mask", jnp.ones((x.shape[0],), jnp.float32))
        count = jnp.maximum(jnp.sum(mask_B), 1.0)
        eps_BxL = self._noise(state.step_key("eps"), (x.shape[0],))
        kl_weight = kl_warmup_weight(state.step, self.kl_warmup_steps)

        def objective(params):
            terms = self.terms(params, state.model_state, x, eps_BxL, True, state)
            loss_B = terms.reconstruction + self.beta * kl_weight * terms.kl
            return jnp.sum(loss_B * mask_B) / count, terms

        grads, terms = jax.grad(objective, has_aux=True)(state.params)
        new_state = apply_gradients(state, self.optimizer, grads)
        new_state = new_state.replace(step=state.step + 1, model_state=terms.model_state)
        return new_state, self._sums(terms, kl_weight, mask_B)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        """The terms in eval mode with noise from a fixed stream of ``state.rng``; ``loss``
        weighs the KL by ``beta`` alone (the objective once the warm-up is over)."""
        x = batch["x"]
        mask_B = batch.get("mask", jnp.ones((x.shape[0],), jnp.float32))
        eps_BxL = self._noise(jax.random.fold_in(state.rng, EVAL_STREAM), (x.shape[0],))
        terms = self.terms(state.params, state.model_state, x, eps_BxL, False)
        return self._sums(terms, 1.0, mask_B)

    def log_weights(self, state: TrainState, x, eps_KxBxL) -> jax.Array:
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), z_k = mu + sigma eps_k, for
        K noise draws per example (eval mode): ``[K, B]``."""
        params, model_state = state.params, state.model_state
        mu, logvar, _ = self.encode(params, model_state, x)
        mu, logvar = mu[None], logvar[None]  # [1, B, L]: one posterior for the K draws
        z_KxBxL = reparameterize(mu, logvar, eps_KxBxL)
        k, b = eps_KxBxL.shape[:2]
        out, _ = self.decode(params, model_state, z_KxBxL.reshape(k * b, self.latent_dim))
        x_KBxD = jnp.broadcast_to(x.reshape(1, b, -1), (k, b, out.shape[1])).reshape(k * b, -1)
        log_px_KxB = self.log_likelihood(params, out, x_KBxD).reshape(k, b)
        log_pz_KxB = gaussian_log_density(z_KxBxL, 0.0, 0.0)
        log_qz_KxB = gaussian_log_density(z_KxBxL, mu, logvar)
        return log_px_KxB + log_pz_KxB - log_qz_KxB

    def importance_weighted(self, state: TrainState, x, key, k: int) -> tuple[jax.Array, jax.Array]:
        """``(L_K [B], mean_k log w_k [B])``: the IWAE bound of log p(x) with ``k`` samples,
        and the K-sample average of the ELBO's single-sample estimates (Jensen: L_K >= it
        for every example, and the two are equal when k = 1)."""
        log_w_KxB = self.log_weights(state, x, self._noise(key, (k, x.shape[0])))
        return importance_weighted_bound(log_w_KxB), jnp.mean(log_w_KxB, axis=0)

    def sample(self, state: TrainState, n: int, key: jax.Array) -> jax.Array:
        """``n`` samples' means E[x|z], z ~ N(0, I) drawn with ``key``: ``[n, *x_shape]``."""
        out, _ = self.decode(state.params, state.model_state, self._noise(key, (n,)))
        return self.mean_image(out)

    def reconstruct(self, state: TrainState, x) -> jax.Array:
        """E[x|z = mu(x)]: the decoder's mean image at the posterior mean, shaped like x."""
        mu, _, _ = self.encode(state.params, state.model_state, x)
        return self.mean_image(self.decode(state.params, state.model_state, mu)[0])

    def latent_means(self, state: TrainState, x) -> jax.Array:
        """The posterior means mu(x) ``[B, L]``."""
        return self.encode(state.params, state.model_state, x)[0]

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """See :func:`dlcore.tasks.vae_report.vae_report`."""
        from dlcore.tasks.vae_report import vae_report  # matplotlib only at the end of a run

        return vae_report(self, state, data, pathlib.Path(directory))

    def snapshot(self, state: TrainState, data: Dataset, directory: pathlib.Path, epoch: int):
        """``samples_epoch{epoch:04d}.png``: the same prior draws every epoch (image data)."""
        from dlcore.tasks.vae_report import sample_grid

        path = pathlib.Path(directory) / f"samples_epoch{epoch:04d}.png"
        sample_grid(self, state, data, path)


class VAEConfig(QualityFields, TaskSection):
    """A variational autoencoder: ``[models.encoder]`` reads x and outputs 2 * latent_dim
    numbers (posterior mean and log-variance), ``[models.decoder]`` maps z back to one output
    per pixel; one ``[optimizer]`` trains both. Labels are never read."""

    model_roles: ClassVar[tuple[str, ...]] = ROLES
    optimizer_roles: ClassVar[tuple[str, ...]] = ("model",)  # one chain over both models

    name: Literal["vae"] = "vae"
    latent_dim: PositiveInt = 8
    likelihood: one_of(LIKELIHOODS, "likelihood") = "bernoulli"
    gaussian_std: PositiveFloat | None = Field(
        None, description="fixed std of the Gaussian decoder; unset: learned (one scalar)"
    )
    beta: float = Field(1.0, ge=0.0, description="weight of the KL term (beta-VAE)")
    kl_warmup_steps: int = Field(0, ge=0, description="steps of the linear KL warm-up 0 -> 1")
    iw_samples: PositiveInt = Field(
        100, description="importance samples K of the report's test log-likelihood"
    )

    @model_validator(mode="after")
    def _consistent(self):
        if self.gaussian_std is not None and self.likelihood != "gaussian":
            raise ValueError(
                "gaussian_std is the Gaussian decoder's std: set likelihood = 'gaussian'"
            )
        return self

    def needs(self) -> tuple[Need, ...]:
        return (Need("x", ("features",), "real-valued inputs to model"),)

    def build(self, ctx: BuildContext) -> VAETask:
        x = ctx.data.fields["x"]
        if self.likelihood == "bernoulli" and ctx.data.info.get("pixel_range") != [0.0, 1.0]:
            raise FieldError(
                "task.likelihood",
                f"'bernoulli' needs pixels in [0, 1]; data {ctx.data.name!r} have no such range "
                "(digits: preprocess = 'unit' or binarize = true; else likelihood = 'gaussian')",
            )
        encoder = ctx.model(2 * self.latent_dim, "encoder")
        # The decoder reads z, not x: check its needs against what z is.
        z_field = FieldSpec((self.latent_dim,), "float32", "features")
        code = DataSpec("the latent z", {"x": z_field}, {}, None, {})
        problem = first_unmet(ctx.model_section("decoder").needs(), code)
        if problem is not None:
            raise FieldError(
                "models.decoder.name",
                f"{ctx.model_section('decoder').name} {problem}; the decoder must read vectors "
                "z, e.g. mlp or dcgan_generator",
            )
        # A decoder with an output activation (dcgan_generator's sigmoid) would squash the
        # logits the Bernoulli likelihood reads.
        output = getattr(ctx.model_section("decoder"), "output", None)
        if self.likelihood == "bernoulli" and output not in (None, "linear"):
            raise FieldError(
                "models.decoder.output",
                f"the Bernoulli likelihood reads logits; got output = {output!r}: set "
                "output = 'linear'",
            )
        decoder = ctx.model(math.prod(x.shape), "decoder", reads_data=False)
        return VAETask(
            encoder=encoder,
            decoder=decoder,
            optimizer=ctx.optimizer(),
            latent_dim=self.latent_dim,
            x_shape=tuple(x.shape),
            likelihood=self.likelihood,
            gaussian_std=self.gaussian_std,
            beta=self.beta,
            kl_warmup_steps=self.kl_warmup_steps,
            iw_samples=self.iw_samples,
            image_shape=image_shape(tuple(x.shape), ctx.data.info.get("image_shape")),
            quality=quality_net(self, ctx.data),
        )


def image_shape(x_shape: tuple[int, ...], info_shape) -> tuple[int, ...] | None:
    """How to draw one example: x itself when it is an ``[H, W, C]`` image, the data's
    ``info["image_shape"]`` when it has x's size, else None (not images)."""
    if len(x_shape) == 3 and x_shape[-1] in (1, 3):
        return x_shape
    if info_shape and math.prod(info_shape) == math.prod(x_shape):
        return tuple(info_shape)
    return None
