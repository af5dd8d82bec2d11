"""Image priors for gradient ascent on an input: what keeps a synthesised image natural.

Unregularised ascent finds high-frequency patterns that excite a unit but look like
noise. The usual remedies (Simonyan et al. 2013; Mahendran & Vedaldi 2015; Yosinski et
al. 2015) are penalties and small transformations between steps:

    L2 decay             R_2(x)  = ½ Σ x²
    total variation      R_TV(x) = ½ Σ (x[i+1, j] - x[i, j])² + ½ Σ (x[i, j+1] - x[i, j])²
    jitter               x -> roll(x, (dy, dx)) with |dy|, |dx| <= J, fresh each step
    blur                 x -> G_σ * x after each step (separable Gaussian, edge-padded)

The penalties are sums, so their gradient at a pixel (x itself; minus the discrete
Laplacian) does not depend on the image size. All functions act on one image
``[H, W, C]`` and are pure JAX (usable inside ``jit``).
"""

import math

import jax
import jax.numpy as jnp


def l2_penalty(x_HxWxC: jax.Array) -> jax.Array:
    """``½ Σ x²``.

    Example:
      >>> float(l2_penalty(jnp.full((2, 2, 1), 3.0)))
      18.0
    """
    return 0.5 * jnp.sum(jnp.square(x_HxWxC))


def total_variation(x_HxWxC: jax.Array) -> jax.Array:
    """Squared-difference total variation: half the sum of squared vertical and
    horizontal steps.

    Example:
      >>> x = jnp.array([[0.0, 1.0], [0.0, 1.0]])[..., None]
      >>> float(total_variation(x))  # rows equal, two column steps of 1
      1.0
    """
    dy = x_HxWxC[1:, :, :] - x_HxWxC[:-1, :, :]
    dx = x_HxWxC[:, 1:, :] - x_HxWxC[:, :-1, :]
    return 0.5 * (jnp.sum(jnp.square(dy)) + jnp.sum(jnp.square(dx)))


def jitter(x_HxWxC: jax.Array, key: jax.Array, pixels: int) -> jax.Array:
    """``x`` rolled by a random whole-pixel shift in [-pixels, pixels] along H and W
    (wrapping around), so that the ascent cannot rely on exact pixel positions.

    Example:
      >>> x = jnp.arange(9.0).reshape(3, 3, 1)
      >>> bool(jnp.all(jitter(x, jax.random.key(0), 0) == x))
      True
    """
    if pixels == 0:
        return x_HxWxC
    shift = jax.random.randint(key, (2,), -pixels, pixels + 1)
    return jnp.roll(x_HxWxC, (shift[0], shift[1]), axis=(0, 1))


def gaussian_kernel(sigma: float, dtype=jnp.float32) -> jax.Array:
    """The normalised 1-D Gaussian ``exp(-t² / 2σ²)`` on t = -r..r, r = ceil(3σ)."""
    radius = max(1, math.ceil(3.0 * sigma))
    t = jnp.arange(-radius, radius + 1, dtype=dtype)
    k = jnp.exp(-0.5 * jnp.square(t / sigma))
    return k / jnp.sum(k)


def gaussian_blur(x_HxWxC: jax.Array, sigma: float) -> jax.Array:
    """``x`` convolved with a Gaussian of standard deviation ``sigma`` pixels along H and W,
    each channel separately; borders are edge-padded so the mean brightness is kept.
    ``sigma = 0`` returns ``x``.

    Example:
      >>> x = jnp.ones((5, 5, 2))
      >>> bool(jnp.allclose(gaussian_blur(x, 1.0), x))
      True
    """
    if sigma <= 0:
        return x_HxWxC
    k = gaussian_kernel(sigma, x_HxWxC.dtype)
    r = (k.shape[0] - 1) // 2
    padded = jnp.pad(x_HxWxC, ((r, r), (r, r), (0, 0)), mode="edge")

    def along(axis: int, a: jax.Array) -> jax.Array:
        return jnp.apply_along_axis(lambda v: jnp.convolve(v, k, mode="valid"), axis, a)

    return along(1, along(0, padded))
