"""Saliency maps (Simonyan et al. 2013): which pixels the class score is most sensitive to.

For a classifier with scores S(x) in R^K and a class c:

    M_c(x)[i, j] = max_ch |∂S_c(x) / ∂x[i, j, ch]|

SmoothGrad (Smilkov et al. 2017) averages the map over noisy copies of the input, which
removes much of the gradient's pixel-level noise:

    M̂_c(x) = (1/n) Σ_k M_c(x + ε_k),   ε_k ~ N(0, σ²),  σ = noise · (max x - min x)
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.viz.probe import OUTPUT, check_reads


def class_score(module: nn.Module, variables, x_HxWxC: jax.Array, cls) -> jax.Array:
    """S_c(x): the model's score (logit) for class ``cls`` on one image."""
    return module.apply(variables, x_HxWxC[None], train=False)[0, cls]


@functools.partial(jax.jit, static_argnames=("module",))
def _saliency(module, variables, x_HxWxC, cls):
    grad_HxWxC = jax.grad(lambda x: class_score(module, variables, x, cls))(x_HxWxC)
    return jnp.max(jnp.abs(grad_HxWxC), axis=-1)


@functools.partial(jax.jit, static_argnames=("module", "samples"))
def _smoothgrad(module, variables, x_HxWxC, cls, key, noise, *, samples):
    sigma = noise * (jnp.max(x_HxWxC) - jnp.min(x_HxWxC))
    eps_NxHxWxC = sigma * jax.random.normal(key, (samples, *x_HxWxC.shape), x_HxWxC.dtype)
    maps_NxHxW = jax.vmap(lambda e: _saliency(module, variables, x_HxWxC + e, cls))(eps_NxHxWxC)
    return jnp.mean(maps_NxHxW, axis=0)


def check_class(module: nn.Module, variables, x_HxWxC: jax.Array, cls: int) -> int:
    """The number of classes K, after checking the model gives scores ``[B, K]`` for this
    input and that 0 <= ``cls`` < K.

    Raises:
      ValueError: one line naming the input shape, the output shape or the class.
    """
    if x_HxWxC.ndim != 3:
        raise ValueError(f"saliency needs one image [H, W, C]; got shape {x_HxWxC.shape}")
    shape = check_reads(module, variables, x_HxWxC[None], OUTPUT)
    if len(shape) != 2:
        raise ValueError(f"saliency needs class scores [K]; the model gives {list(shape[1:])}")
    if not 0 <= cls < shape[1]:
        raise ValueError(f"class {cls} is out of range: the model has {shape[1]} classes")
    return shape[1]


def saliency(module: nn.Module, variables, x_HxWxC: jax.Array, cls: int) -> jax.Array:
    """M_c(x), ``[H, W]`` (module docstring).

    Args:
      module, variables: a classifier giving scores ``[B, K]`` and its variables.
      x_HxWxC: one input image in the model's input space.
      cls: the class c whose score is differentiated.

    Raises:
      ValueError: if the model cannot read the image, gives no ``[B, K]`` scores, or ``cls``
        is out of range.

    Example:
      >>> from dlcore.models import LeNet5
      >>> model = LeNet5(out_features=3, image_size=16)
      >>> x = jax.random.normal(jax.random.key(1), (16, 16, 1))
      >>> variables = model.init(jax.random.key(0), x[None], train=False)
      >>> saliency(model, variables, x, 2).shape
      (16, 16)
    """
    check_class(module, variables, x_HxWxC, cls)
    return _saliency(module, variables, jnp.asarray(x_HxWxC), jnp.int32(cls))


def smoothgrad(
    module: nn.Module,
    variables,
    x_HxWxC: jax.Array,
    cls: int,
    key: jax.Array,
    *,
    samples: int = 16,
    noise: float = 0.15,
) -> jax.Array:
    """M̂_c(x), ``[H, W]``: the saliency map averaged over ``samples`` noisy copies with
    noise level ``noise`` (a fraction of the input's range; module docstring).

    Raises:
      ValueError: as :func:`saliency`, or for ``samples < 1`` or ``noise < 0``.
    """
    if samples < 1 or not noise >= 0:
        raise ValueError(f"smoothgrad needs samples >= 1, noise >= 0; got {samples}, {noise}")
    check_class(module, variables, x_HxWxC, cls)
    x_HxWxC = jnp.asarray(x_HxWxC)
    return _smoothgrad(
        module, variables, x_HxWxC, jnp.int32(cls), key, jnp.float32(noise), samples=samples
    )
