"""Input corruption for denoising autoencoders: the model sees x_tilde ~ q(x_tilde | x) and
must rebuild the clean x.

Two corruptions, each a pure function of a PRNG key and the clean batch:

    masking:   x_tilde_d = b_d x_d,            b_d ~ Bernoulli(1 - p)   (feature set to 0 w.p. p)
    gaussian:  x_tilde_d = x_d + sigma eps_d,  eps_d ~ N(0, 1)

"Set to 0" means the value 0 of the inputs as the model receives them: for standardized
features (digits' default ``preprocess``) 0 is the training mean of that feature, so a
masked pixel reads as "average ink", not as "no ink"; with ``preprocess = "none"`` it is
a blank pixel. Every feature (every pixel of an image, every channel) is masked on its own.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

Corruption = Callable[[jax.Array, jax.Array], jax.Array]  # (key, x) -> x_tilde, same shape


def mask_features(key: jax.Array, x: jax.Array, p: float) -> jax.Array:
    """Sets each entry of ``x`` to 0 independently with probability ``p`` (masking noise).

    Args:
      key: PRNG key (one per step: the task passes ``state.step_key("corruption")``).
      x: clean inputs ``[B, ...]``.
      p: drop probability, 0 <= p < 1.

    Returns:
      x_tilde shaped like ``x``: x_d where kept, 0 where dropped. Not rescaled by 1/(1-p)
      (unlike dropout): the decoder must rebuild the clean values, not their expectation.
    """
    keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
    return jnp.where(keep, x, jnp.zeros_like(x))


def add_gaussian_noise(key: jax.Array, x: jax.Array, sigma: float) -> jax.Array:
    """x_tilde = x + sigma * eps with eps ~ N(0, I), drawn in the dtype of ``x``.

    Args:
      key: PRNG key.
      x: clean inputs ``[B, ...]``.
      sigma: noise standard deviation (in the units of ``x``; digits are standardized, so
        sigma = 0.5 is half a pixel's standard deviation).

    Returns:
      x_tilde shaped like ``x``.
    """
    return x + sigma * jax.random.normal(key, x.shape, x.dtype)


CORRUPTIONS: dict[str, Callable[[jax.Array, jax.Array, float], jax.Array]] = {
    "masking": mask_features,
    "gaussian": add_gaussian_noise,
}


def make_corruption(name: str, level: float) -> Corruption | None:
    """``(key, x) -> x_tilde`` for a name in ``CORRUPTIONS`` at ``level`` (p or sigma);
    None for ``"none"`` (the task then trains on the clean inputs, as a plain autoencoder).

    Example:
      >>> corrupt = make_corruption("masking", 0.25)
      >>> x_tilde = corrupt(jax.random.key(0), jnp.ones((4, 64)))   # ~25% zeros
    """
    if name == "none":
        return None
    corrupt = CORRUPTIONS[name]

    def corruption(key: jax.Array, x: jax.Array) -> jax.Array:
        return corrupt(key, x, level)

    return corruption


def check_corruption_level(corruption: str, level: float | None) -> None:
    """The rules a ``corruption``/``corruption_level`` pair of config fields must meet.

    Raises:
      ValueError: a level without a corruption, a corruption without a level, or a masking
        probability of 1 or more (every input would be dropped).
    """
    if corruption == "none" and level is not None:
        raise ValueError("corruption_level needs corruption = 'masking' or 'gaussian'")
    if corruption != "none" and level is None:
        what = "the drop probability p" if corruption == "masking" else "sigma"
        raise ValueError(f"corruption = {corruption!r} needs corruption_level ({what})")
    if corruption == "masking" and level >= 1:
        raise ValueError(f"masking needs corruption_level < 1; got {level}")
