"""Input preprocessing fitted on the training split only, as pure fit/apply functions.

Statistics come from the training inputs alone and are then applied unchanged to the
validation and test inputs; fitting them on all the data would leak test information.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dlcore.checks import check_rank


class Standardization(NamedTuple):
    """Per-feature mean and std of the training inputs (a pytree, so it can be saved)."""

    mean: jax.Array
    std: jax.Array


def fit_standardization(train_x_NxD: jax.Array, epsilon: float = 1e-8) -> Standardization:
    """Per-feature statistics for x' = (x - mu) / sigma, over the example axis (axis 0).

    Features that are constant on the train split get sigma = 1 (they become 0, not nan).

    Example:
      >>> stats = fit_standardization(jnp.array([[0.0, 5.0], [2.0, 5.0]]))
      >>> apply_standardization(jnp.array([[1.0, 5.0]]), stats)
      Array([[0., 0.]], dtype=float32)
    """
    if train_x_NxD.ndim < 2 or train_x_NxD.shape[0] < 2:
        raise ValueError(
            f"train_x must be [N, ...] with N >= 2 examples; got shape {tuple(train_x_NxD.shape)}"
        )
    mean = jnp.mean(train_x_NxD, axis=0)
    std = jnp.std(train_x_NxD, axis=0)
    return Standardization(mean=mean, std=jnp.where(std > epsilon, std, 1.0))


def apply_standardization(x_NxD: jax.Array, stats: Standardization) -> jax.Array:
    """x' = (x - mu) / sigma with train-split statistics."""
    if x_NxD.shape[1:] != stats.mean.shape:
        raise ValueError(
            f"x features {tuple(x_NxD.shape[1:])} do not match the fitted statistics "
            f"{tuple(stats.mean.shape)}"
        )
    mean, std = stats.mean[None], stats.std[None]  # [1, ...]: broadcast over examples
    return (x_NxD - mean) / std


class ChannelMean(NamedTuple):
    """Per-channel mean of training images (channels last)."""

    mean: jax.Array


def fit_channel_mean(train_x_NxHxWxC: jax.Array) -> ChannelMean:
    """Per-channel mean over examples and pixels, mu_c = mean_{n,h,w} x_nhwc (AlexNet/VGG style).

    Example:
      >>> stats = fit_channel_mean(jnp.ones((2, 4, 4, 3)))
      >>> apply_channel_mean(jnp.ones((1, 4, 4, 3)), stats).sum()
      Array(0., dtype=float32)
    """
    check_rank(train_x_NxHxWxC, 4, "train_x", "[N, H, W, C]")
    return ChannelMean(mean=jnp.mean(train_x_NxHxWxC, axis=(0, 1, 2)))


def apply_channel_mean(x_NxHxWxC: jax.Array, stats: ChannelMean) -> jax.Array:
    """x' = x - mu_c for every pixel of channel c."""
    check_rank(x_NxHxWxC, 4, "x", "[N, H, W, C]")
    if x_NxHxWxC.shape[-1:] != stats.mean.shape:
        raise ValueError(
            f"x has {x_NxHxWxC.shape[-1]} channels but the fitted mean has {stats.mean.shape[0]}"
        )
    return x_NxHxWxC - stats.mean.reshape(1, 1, 1, -1)


class UnitRange(NamedTuple):
    """The smallest and largest training input (scalars): the range mapped onto [0, 1]."""

    low: jax.Array
    high: jax.Array


def fit_unit_range(train_x: jax.Array) -> UnitRange:
    """The training inputs' overall minimum and maximum (digits: 0 and 16), for generative
    models whose likelihoods and output activations need pixels in [0, 1].

    Example:
      >>> stats = fit_unit_range(jnp.array([[0.0, 16.0], [4.0, 8.0]]))
      >>> apply_unit_range(jnp.array([[8.0, 16.0]]), stats)
      Array([[0.5, 1. ]], dtype=float32)
    """
    low, high = jnp.min(train_x), jnp.max(train_x)
    if not bool(high > low):
        raise ValueError(f"preprocess 'unit' needs inputs that vary; every value is {float(low)}")
    return UnitRange(low=low, high=high)


def apply_unit_range(x: jax.Array, stats: UnitRange) -> jax.Array:
    """x' = (x - low) / (high - low): one affine map for every feature, so images keep
    their contrast (unlike per-feature standardization)."""
    return (x - stats.low) / (stats.high - stats.low)


PREPROCESSORS = {
    "standardize": (fit_standardization, apply_standardization),
    "channel_mean": (fit_channel_mean, apply_channel_mean),
    "unit": (fit_unit_range, apply_unit_range),
}
