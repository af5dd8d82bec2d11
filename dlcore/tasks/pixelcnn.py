"""PixelCNN as a task: the exact likelihood of binary images under an autoregressive model.

The ``[model]`` (``pixelcnn``) maps images x ``[B, H, W, C]`` in {0, 1} to one logit per pixel
and channel, causal in raster order (:mod:`dlcore.models.pixelcnn`), and the task minimizes

    NLL(x) = -sum_t [x_t log sigmoid(l_t) + (1 - x_t) log sigmoid(-l_t)]   (nats per image)

averaged over the batch: the exact negative log-likelihood, no bound. Metrics: ``nll`` (nats
per image) and ``bits_per_dim`` = NLL / (H W C ln 2). The report gives the test split's
figures, the independent-pixel reference (:func:`independent_pixel_bits`), a sample grid,
completions of test images' bottom halves and :func:`dlcore.quality.sample_quality` of half
as many samples as test images (:mod:`dlcore.tasks.pixelcnn_report`). Sampling runs the
whole model H W times in one compiled loop (:func:`autoregressive_sample`);
``snapshot_samples > 0`` draws a grid of that many after every validation pass (H W model
passes each: cheap at 8x8).

The data must be binary images: digits with ``layout = "image"``, ``binarize = true`` and
``preprocess = "none"`` (any ``image_size``). Labels are never read.
"""

import dataclasses
import functools
import math
import pathlib
from typing import ClassVar, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import Field

from dlcore.config.errors import FieldError
from dlcore.data.dataset import Dataset
from dlcore.data.needs import Need
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.losses import reduce_loss
from dlcore.quality import FeatureNet, QualityFields, quality_net
from dlcore.tasks.base import init_state
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.pixelcnn_sampling import autoregressive_sample, bits_per_dim, image_nll

BINARY_IMAGES = Need(
    "x", ("features",), "binary images [H, W, C] (digits: layout = 'image', binarize = true)", (3,)
)
CAUSAL_MODELS = ("pixelcnn",)  # models causal in raster order
BINARY_HINT = "digits: binarize = true with preprocess = 'none'"
# fold_in constant of the report's and snapshots' keys: pure functions of the state.
REPORT_STREAM = 31337


def check_binary(x) -> None:
    """Refuses images with a value other than 0 and 1 (research code; configs are checked
    on the data's ``info["binary"]`` before anything is built).

    Raises:
      ValueError: naming a value found and the fix.
    """
    x = np.asarray(x)
    bad = x[(x != 0) & (x != 1)]
    if bad.size:
        raise ValueError(
            f"pixelcnn models binary images (a Bernoulli per pixel), but x holds values other "
            f"than 0 and 1, e.g. {float(bad.flat[0]):g} ({BINARY_HINT})"
        )


@dataclasses.dataclass(frozen=True)
class PixelCNNTask(TaskDefaults):
    """Fits a causal logit model to binary images by maximum likelihood (module docstring).

    Batches hold ``x`` ``[B, H, W, C]`` and, in eval, optionally ``mask`` (``[B]``, 1 for real
    examples, 0 for padding). No step draws random numbers.

    Attributes:
      model: module ``x [B, H, W, C] -> logits [B, H, W, C]``, causal in raster order.
      optimizer: its optax chain.
      image_shape: ``(H, W, C)``.
      snapshot_samples: samples in each per-epoch grid (0: none).
      quality: the Fréchet distance's feature net, or None.

    Example:
      >>> task = PixelCNNTask(PixelCNN(1, features=8, blocks=2), optax.adam(1e-3), (8, 8, 1))
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_Bx8x8x1})
      >>> state, sums = jax.jit(task.train_step)(state, {"x": x_Bx8x8x1})
      >>> float(sums["bits_per_dim"] / sums["count"])
      >>> images = task.sample(state, 16, jax.random.PRNGKey(1))  # [16, 8, 8, 1] in {0, 1}
    """

    model: nn.Module
    optimizer: optax.GradientTransformation
    image_shape: tuple[int, int, int]
    snapshot_samples: int = 0
    quality: FeatureNet | None = dataclasses.field(default=None, compare=False)

    metric_modes: ClassVar[dict[str, Mode]] = {"nll": "min", "bits_per_dim": "min"}
    default_metric: ClassVar[str] = "bits_per_dim"

    @property
    def dims(self) -> int:
        """D = H W C, the binary variables of one image."""
        return math.prod(self.image_shape)

    def _check_shape(self, x) -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"pixelcnn expects images {list(self.image_shape)}; got x {list(x.shape[1:])}"
            )

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        x = batch["x"]
        self._check_shape(x)
        if not isinstance(x, jax.core.Tracer | jax.ShapeDtypeStruct):  # values only when real
            check_binary(x)
        return init_state(self.model, self.optimizer, rng, x)

    def logits(self, params, x: jax.Array) -> jax.Array:
        """The model's logits ``[B, H, W, C]`` (no dropout, no batch norm in PixelCNN)."""
        return self.model.apply({"params": params}, x, train=False)

    def nll(self, params, x: jax.Array) -> jax.Array:
        """NLL(x) of each image ``[B]`` in nats (module docstring)."""
        self._check_shape(x)
        return image_nll(self.logits(params, x), x.astype(jnp.float32))

    def _sums(self, nll_B: jax.Array, batch: Batch) -> Metrics:
        mask_B = batch.get("mask", jnp.ones_like(nll_B))
        total = jnp.sum(nll_B * mask_B)
        return {
            "nll": total,
            "bits_per_dim": bits_per_dim(total, self.dims),
            "count": jnp.sum(mask_B),
        }

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        def loss(params):
            nll_B = self.nll(params, batch["x"])
            return reduce_loss(nll_B, batch.get("mask")), nll_B

        grads, nll_B = jax.grad(loss, has_aux=True)(state.params)
        new_state = apply_gradients(state, self.optimizer, grads).replace(step=state.step + 1)
        return new_state, self._sums(nll_B, batch)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        return self._sums(self.nll(state.params, batch["x"]), batch)

    def sample_with_log_prob(
        self,
        state: TrainState,
        n: int,
        key: jax.Array,
        given: jax.Array | None = None,
        start: int = 0,
    ) -> tuple[jax.Array, jax.Array]:
        """Ancestral samples, one pixel at a time (:func:`autoregressive_sample`).

        Args:
          state: supplies the parameters.
          n: images drawn.
          key: position t draws with ``fold_in(key, t)``.
          given: ``[n, H, W, C]`` images whose pixels before ``start`` are kept (completion);
            None: blank canvases.
          start: the first raster position drawn.

        Returns:
          ``(images [n, H, W, C] in {0, 1}, log_p [n])``: the images and the sum of the
          log-probabilities of the drawn pixels recorded while sampling (nats).
        """
        canvas = jnp.zeros((n, *self.image_shape), jnp.float32) if given is None else given
        return autoregressive_sample(
            lambda c: self.logits(state.params, c), canvas.astype(jnp.float32), key, start
        )

    def sample(self, state: TrainState, n: int, key: jax.Array) -> jax.Array:
        """``n`` images ``[n, H, W, C]`` drawn from the model with ``key``."""
        return self.sample_with_log_prob(state, n, key)[0]

    @functools.cached_property
    def jitted_nll(self):
        """:meth:`nll` compiled once per task (and batch shape), for the report."""
        return jax.jit(self.nll)

    @functools.cached_property
    def jitted_sample(self):
        """:meth:`sample_with_log_prob` compiled once per ``(n, start)`` (both static)."""
        return jax.jit(self.sample_with_log_prob, static_argnums=(1, 4))

    def report_key(self, state: TrainState, stream: int) -> jax.Array:
        """A fixed key of the report (a pure function of the state)."""
        return jax.random.fold_in(jax.random.fold_in(state.rng, REPORT_STREAM), stream)

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """See :func:`dlcore.tasks.pixelcnn_report.pixelcnn_report`."""
        from dlcore.tasks.pixelcnn_report import pixelcnn_report  # matplotlib: end of run only

        return pixelcnn_report(self, state, data, pathlib.Path(directory))

    def snapshot(self, state: TrainState, data: Dataset, directory: pathlib.Path, epoch: int):
        """``samples_epoch{epoch:04d}.png``: ``snapshot_samples`` draws with the same key
        every epoch (nothing when ``snapshot_samples = 0``)."""
        if self.snapshot_samples == 0:
            return
        from dlcore.tasks.pixelcnn_report import sample_grid

        path = pathlib.Path(directory) / f"samples_epoch{epoch:04d}.png"
        sample_grid(self, state, self.snapshot_samples, path)


class PixelCNNConfig(QualityFields, TaskSection):
    """Exact maximum likelihood of binary images under a PixelCNN ``[model]`` (one Bernoulli
    logit per pixel, each depending on earlier pixels only); reports bits/dim and samples."""

    name: Literal["pixelcnn"] = "pixelcnn"
    snapshot_samples: int = Field(
        0, ge=0, description="images in a sample grid after every validation pass (0: none)"
    )

    def needs(self) -> tuple[Need, ...]:
        return (BINARY_IMAGES,)

    def build(self, ctx: BuildContext) -> PixelCNNTask:
        if not ctx.data.info.get("binary"):
            raise FieldError(
                "data",
                f"pixelcnn models binary images (a Bernoulli per pixel); {ctx.data.name!r} does "
                f"not declare 0/1 pixels ({BINARY_HINT})",
            )
        model_name = ctx.model_section().name
        if model_name not in CAUSAL_MODELS:
            # Any other per-pixel model would read the pixel it predicts: a likelihood of 0
            # bits that means nothing and samples that are noise.
            raise FieldError(
                "model.name",
                f"the pixelcnn task needs a model whose logit at each pixel depends on earlier "
                f"pixels only; {model_name!r} is not one: use {' or '.join(CAUSAL_MODELS)}",
            )
        shape = ctx.data.fields["x"].shape  # [H, W, C] (the need checked the rank)
        return PixelCNNTask(
            model=ctx.model(shape[-1]),
            optimizer=ctx.optimizer(),
            image_shape=tuple(shape),
            snapshot_samples=self.snapshot_samples,
            quality=quality_net(self, ctx.data),
        )
