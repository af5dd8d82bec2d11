"""Normalization layers: batch norm, layer norm and AlexNet's local response normalization.

Batch and layer norm are Flax's implementations behind the ``__call__(x, *, train)`` signature
every dlcore model uses; batch norm's running averages live in the ``batch_stats`` collection,
which the supervised task carries in ``TrainState.model_state``.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from pydantic import Field, PositiveInt, model_validator

from dlcore.checks import check_choice, check_positive_int
from dlcore.config.section import Section, one_of
from dlcore.layers.geometry import layer_name


def batch_norm(
    x_BxC: jax.Array, mean_C: jax.Array, var_C: jax.Array, scale_C, bias_C, epsilon: float
) -> jax.Array:
    """y = scale * (x - mean) / sqrt(var + eps) + bias, statistics per channel (last axis)."""
    shape = (1,) * (x_BxC.ndim - 1) + (-1,)
    mul = (scale_C * lax.rsqrt(var_C + epsilon)).reshape(shape)
    return (x_BxC - mean_C.reshape(shape)) * mul + bias_C.reshape(shape)


class _BatchNormVariables(nn.Module):
    """Owns what ``flax.linen.BatchNorm`` owns, under the same names (``scale``, ``bias``;
    ``batch_stats`` ``mean``, ``var``), so param trees and checkpoints keep their paths."""

    momentum: float
    epsilon: float
    unbiased_running_var: bool
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        scale = self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
        dtype = jnp.result_type(x, scale, jnp.float32)  # statistics in at least float32
        out_dtype = jnp.result_type(x, scale)
        if not train:
            y = batch_norm(x, ra_mean.value, ra_var.value, scale, bias, self.epsilon)
            return y.astype(out_dtype)
        axes = tuple(range(x.ndim - 1))
        n = x.size // c  # values per channel in the batch
        mean = jnp.mean(x.astype(dtype), axis=axes)
        var = jnp.var(x.astype(dtype), axis=axes)  # biased: the batch is normalized with it
        if not self.is_initializing():
            m = self.momentum
            run_var = var * (n / (n - 1)) if self.unbiased_running_var else var
            ra_mean.value = m * ra_mean.value + (1 - m) * mean.astype(jnp.float32)
            ra_var.value = m * ra_var.value + (1 - m) * run_var.astype(jnp.float32)
        return batch_norm(x, mean, var, scale, bias, self.epsilon).astype(out_dtype)


class BatchNorm(nn.Module):
    """Batch normalization (Ioffe & Szegedy, 2015) over all axes but the last.

    train: y = gamma * (x - mu_B) / sqrt(var_B + eps) + beta, with the biased batch variance
           var_B = (1/n) sum (x - mu_B)^2 over the n values per channel, and the running
           averages updated as r <- momentum * r + (1 - momentum) * batch value, where the
           batch value of the variance is var_B (flax, TensorFlow) or, with
           ``unbiased_running_var``, n/(n - 1) var_B (PyTorch's convention);
    eval:  the same with the running mean and variance in place of mu_B, var_B.

    Running averages start at mean 0, variance 1 and are not updated by ``init``. The
    variables live in a ``BatchNorm_0`` submodule with flax's names (``params``: scale, bias;
    ``batch_stats``: mean, var), so trees match those of ``flax.linen.BatchNorm``.

    Attributes:
      momentum: decay of the running averages (PyTorch's ``momentum`` is 1 - this).
      epsilon: added to the variance for stability.
      unbiased_running_var: track n/(n - 1) var_B instead of var_B.
      param_dtype: dtype of scale and bias (the running averages stay float32).

    Example:
      >>> layer = BatchNorm()
      >>> variables = layer.init(jax.random.key(0), jnp.ones((4, 3)), train=False)
      >>> sorted(variables)
      ['batch_stats', 'params']
    """

    momentum: float = 0.9
    epsilon: float = 1e-5
    unbiased_running_var: bool = False
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if train and self.unbiased_running_var and x.size <= x.shape[-1]:
            raise ValueError(
                f"{layer_name(self)}: the unbiased running variance n/(n - 1) var_B needs "
                f"n > 1 values per channel; got input {tuple(x.shape)}"
            )
        return _BatchNormVariables(
            self.momentum,
            self.epsilon,
            self.unbiased_running_var,
            self.param_dtype,
            name="BatchNorm_0",
        )(x, train=train)


class LayerNorm(nn.Module):
    """Layer normalization (Ba et al., 2016) over the last axis; the same in train and eval.

    y = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta, statistics per example.

    Attributes:
      epsilon: added to the variance for stability.
      param_dtype: dtype of gamma (``scale``) and beta (``bias``).

    Example:
      >>> layer = LayerNorm()
      >>> variables = layer.init(jax.random.key(0), jnp.ones((4, 3)), train=False)
      >>> sorted(variables["params"]["LayerNorm_0"])
      ['bias', 'scale']
    """

    epsilon: float = 1e-5
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # per-example statistics: nothing differs between modes
        return nn.LayerNorm(epsilon=self.epsilon, param_dtype=self.param_dtype)(x)


# absolute: alpha multiplies the window's sum of squares (AlexNet, TensorFlow's
# depth_radius form); divided_by_size: alpha / n does (PyTorch, Caffe), i.e. alpha
# multiplies the window's mean with the zero padding counted.
LRN_ALPHA_CONVENTIONS = ("absolute", "divided_by_size")
# refuse: only odd n, a window centred on each channel; more_before: an even n is also
# accepted, its window taking n/2 channels before c and n/2 - 1 after (PyTorch's padding).
LRN_EVEN_SIZES = ("refuse", "more_before")


def local_response_norm(
    x_BxHxWxC: jax.Array,
    size: int = 5,
    k: float = 2.0,
    alpha: float = 1e-4,
    beta: float = 0.75,
    alpha_convention: str = "absolute",
    even_size: str = "refuse",
) -> jax.Array:
    """Local response normalization across channels (Krizhevsky et al., 2012).

    b_c = a_c / (k + alpha' * sum_{j = max(0, c - floor(n/2))}^{min(C - 1, c + floor((n-1)/2))}
                 a_j^2)^beta

    with n = ``size`` neighbouring channels, channels on the last axis, and alpha' = alpha
    (``alpha_convention="absolute"``, AlexNet's) or alpha / n (``"divided_by_size"``,
    PyTorch's ``LocalResponseNorm``, which also defaults to k = 1). For odd n the window is
    centred, c +- (n-1)/2; an even n (``even_size="more_before"``) reaches n/2 channels back
    and n/2 - 1 forward, as PyTorch pads it.

    Args:
      x_BxHxWxC: activations; any rank >= 1 with channels last.
      size: number of channels n in the window (odd unless ``even_size="more_before"``).
      k, alpha, beta: the constants of the formula; AlexNet's values are the defaults.
      alpha_convention: ``"absolute"`` or ``"divided_by_size"`` (see above).
      even_size: ``"refuse"`` an even n, or accept it with the window ``"more_before"`` c.

    Returns:
      Normalized activations, same shape.

    Example:
      >>> local_response_norm(jnp.ones((1, 2, 2, 8))).shape
      (1, 2, 2, 8)
    """
    check_positive_int(size, "LRN size")
    check_choice(alpha_convention, LRN_ALPHA_CONVENTIONS, "LRN alpha_convention")
    check_choice(even_size, LRN_EVEN_SIZES, "LRN even_size")
    if size % 2 == 0 and even_size == "refuse":
        raise ValueError(
            f"LRN size must be odd (a window centred on each channel); got {size} "
            "(even_size='more_before' accepts it with PyTorch's window)"
        )
    squares = x_BxHxWxC * x_BxHxWxC
    # Zero-pad the channel axis and add the n shifted views: the padding realises the
    # max(0, .)/min(C - 1, .) limits of the sum. n is small (5), so n slices are cheap.
    channels = x_BxHxWxC.shape[-1]
    pad = ((0, 0),) * (squares.ndim - 1) + ((size // 2, (size - 1) // 2),)
    padded = jnp.pad(squares, pad)
    sums = sum(padded[..., offset : offset + channels] for offset in range(size))
    scale = alpha / size if alpha_convention == "divided_by_size" else alpha
    return x_BxHxWxC / jnp.power(k + scale * sums, beta)


class LocalResponseNorm(nn.Module):
    """:func:`local_response_norm` as a module (no parameters), for use in model stacks.

    Example:
      >>> LocalResponseNorm().apply({}, jnp.ones((1, 2, 2, 8))).shape
      (1, 2, 2, 8)
    """

    size: int = 5
    k: float = 2.0
    alpha: float = 1e-4
    beta: float = 0.75
    alpha_convention: str = "absolute"
    even_size: str = "refuse"

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        return local_response_norm(
            x, self.size, self.k, self.alpha, self.beta, self.alpha_convention, self.even_size
        )


class LRNSection(Section):
    """A model's ``lrn`` field: ``true`` (AlexNet's LRN), ``false`` (none), or a table of the
    constants and conventions of :func:`local_response_norm` (unset keys keep AlexNet's).

    PyTorch's ``nn.LocalResponseNorm(size, alpha, beta, k)`` is ``lrn = {size, alpha, beta,
    k, alpha_convention = "divided_by_size", even_size = "more_before"}``.
    """

    enabled: bool = True
    size: PositiveInt = Field(5, description="channels n in the window")
    k: float = 2.0
    alpha: float = Field(1e-4, ge=0.0)
    beta: float = 0.75
    alpha_convention: one_of(LRN_ALPHA_CONVENTIONS, "LRN alpha_convention") = Field(
        "absolute", description="alpha multiplies the window's sum, or alpha/n does (PyTorch)"
    )
    even_size: one_of(LRN_EVEN_SIZES, "LRN even_size") = Field(
        "refuse", description="more_before: accept an even n, window c - n/2 .. c + n/2 - 1"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_flag(cls, data):
        return {"enabled": data} if isinstance(data, bool) else data

    @model_validator(mode="after")
    def _odd_unless_asked(self) -> "LRNSection":
        if self.size % 2 == 0 and self.even_size == "refuse":
            raise ValueError(
                f"size must be odd (a window centred on each channel); got {self.size} "
                "(even_size = 'more_before' accepts it with PyTorch's window)"
            )
        return self

    def make(self) -> "LocalResponseNorm | bool":
        """The layer, or False when disabled (a model's ``lrn`` attribute)."""
        if not self.enabled:
            return False
        return LocalResponseNorm(**self.model_dump(exclude={"enabled"}))
