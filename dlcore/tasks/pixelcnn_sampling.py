"""The Bernoulli likelihood of binary images under per-pixel logits, and ancestral sampling
from an autoregressive image model one pixel at a time in one compiled loop.

For logits l and binary x (one logit per pixel and channel):

    log p(x_t | x_<t) = x_t log sigmoid(l_t) + (1 - x_t) log sigmoid(-l_t)
    NLL(x) = -sum_t log p(x_t | x_<t)            (nats per image)
    bits/dim = NLL(x) / (H W C ln 2)

Sampling visits the H W positions in raster order t = i W + j. Step t runs the whole model
on the current canvas, reads the logits at (i, j) (which, by the model's causality, depend
only on the pixels already drawn) and draws pixel (i, j) from its Bernoulli with the key
``fold_in(key, t)``; the canvas pixels not yet drawn are never read. So a sample is a pure
function of the key, and the same key gives the same images from any start position.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

LN2 = float(np.log(2.0))


def bernoulli_log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
    """Elementwise log p(x | l) = x log sigmoid(l) + (1 - x) log sigmoid(-l) (stable for
    large |l|).

    Example:
      >>> float(bernoulli_log_prob(jnp.array(0.0), jnp.array(1.0)))  # log 1/2
      -0.6931...
    """
    return x * jax.nn.log_sigmoid(logits) + (1.0 - x) * jax.nn.log_sigmoid(-logits)


def image_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
    """NLL(x) = -sum over every pixel and channel of log p(x | l): ``[B, ...] -> [B]`` nats.

    Raises:
      ValueError: when the logits are not shaped like the images.
    """
    if logits.shape != x.shape:
        raise ValueError(
            f"the model must give one logit per pixel and channel {tuple(x.shape)}; got "
            f"{tuple(logits.shape)}"
        )
    log_p = bernoulli_log_prob(logits, x)
    return -jnp.sum(log_p.reshape(x.shape[0], -1), axis=1)


def bits_per_dim(nll_nats: jax.Array | float, dims: int) -> jax.Array | float:
    """NLL(x) / (D ln 2): nats per image to bits per pixel (D = H W C)."""
    return nll_nats / (dims * LN2)


def autoregressive_sample(
    logits_fn: Callable[[jax.Array], jax.Array],
    canvas_NxHxWxC: jax.Array,
    key: jax.Array,
    start: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Draws pixels ``start, ..., H W - 1`` (raster order) of ``canvas`` one at a time.

    Args:
      logits_fn: ``canvas [N, H, W, C] -> logits [N, H, W, C]``, causal in raster order.
      canvas_NxHxWxC: the images; pixels before ``start`` are kept (the given part of a
        completion), the rest are overwritten (their values are never read).
      key: the sample's key; position t draws with ``fold_in(key, t)``.
      start: the first position drawn (0: whole images; (H / 2) W: bottom halves).

    Returns:
      ``(canvas, log_p_N)``: the completed images and, per image, the sum over the drawn
      positions of log p(x_t | x_<t) as recorded while sampling (nats).

    Example:
      >>> images, log_p = autoregressive_sample(lambda c: jnp.zeros_like(c),
      ...                                       jnp.zeros((4, 2, 2, 1)), jax.random.key(0))
      >>> log_p.tolist()  # four coin flips per image
      [-2.77..., -2.77..., -2.77..., -2.77...]
    """
    n, h, w, c = canvas_NxHxWxC.shape
    if not 0 <= start <= h * w:
        raise ValueError(f"start must be a position in 0..{h * w}; got {start}")

    def step(t, carry):
        canvas, log_p_N = carry
        i, j = t // w, t % w
        logits = logits_fn(canvas)  # [N, H, W, C]
        l_NxC = jax.lax.dynamic_slice(logits, (0, i, j, 0), (n, 1, 1, c)).reshape(n, c)
        u_NxC = jax.random.uniform(jax.random.fold_in(key, t), (n, c))
        x_NxC = (u_NxC < jax.nn.sigmoid(l_NxC)).astype(canvas.dtype)
        log_p_N = log_p_N + jnp.sum(bernoulli_log_prob(l_NxC, x_NxC), axis=1)
        canvas = jax.lax.dynamic_update_slice(canvas, x_NxC.reshape(n, 1, 1, c), (0, i, j, 0))
        return canvas, log_p_N

    init = (canvas_NxHxWxC, jnp.zeros((n,), jnp.float32))
    return jax.lax.fori_loop(start, h * w, step, init)


def independent_pixel_bits(train_x: np.ndarray, test_x: np.ndarray, eps: float = 1e-3) -> float:
    """Test bits/dim of the independent-pixel Bernoulli model p(x) = prod_t q_t^x_t
    (1 - q_t)^(1 - x_t) with q_t the training mean of pixel t, clipped to [eps, 1 - eps]
    (a pixel never inked in training would otherwise cost infinitely many bits). The
    reference a PixelCNN must beat: it models no dependence between pixels.

    Example:
      >>> independent_pixel_bits(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.0, 1.0]]))
      1.0
    """
    train_x = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
    test_x = np.asarray(test_x, np.float64).reshape(len(test_x), -1)
    q_D = np.clip(train_x.mean(axis=0), eps, 1.0 - eps)
    log_p = test_x * np.log(q_D) + (1.0 - test_x) * np.log1p(-q_D)
    return float(-log_p.sum(axis=1).mean() / (test_x.shape[1] * LN2))
