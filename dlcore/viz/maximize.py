"""Activation maximisation: the input that most excites one unit (Erhan et al. 2009;
Simonyan et al. 2013), found by gradient ascent on the input with image priors.

For a unit u of layer l (a channel of a feature-map layer, averaged over positions, or
one output of a vector layer such as a class score) the image is x = m + s·z, with m, s
the data's per-channel mean and standard deviation, and the ascent runs on z:

    a_u(x)  = mean_{i,j} f_l(x)[i, j, u]        or   f_l(x)[u]
    g_t     = ∇_z a_u(m + s·jitter(z_t))
    z_{t+1} = blur_σ(z_t + η (g_t / rms(g_t) - λ_2 ∇R_2(z_t) - λ_TV ∇R_TV(z_t)))

with the priors R_2 and R_TV of :mod:`dlcore.viz.priors`. Dividing the unit's gradient
by its root mean square makes η a step in data standard deviations and λ_2, λ_TV
independent of the unit's scale: with λ_2 alone, pixels settle near |z| ≈ 1/λ_2. The
whole ascent is one compiled ``lax.scan``.
"""

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.viz.priors import gaussian_blur, jitter, l2_penalty, total_variation
from dlcore.viz.probe import check_layer, layer_output, layer_shapes


class Ascent(NamedTuple):
    """Result of :func:`maximize_unit`.

    Attributes:
      image: the synthesised input ``[H, W, C]``.
      start: the unit's activation a_u at the starting image (no jitter).
      end: a_u at the result.
      trace: a_u at each step, on that step's jittered image, ``[steps]``.
    """

    image: jax.Array
    start: jax.Array
    end: jax.Array
    trace: jax.Array


def unit_activation(activation: jax.Array, unit: int) -> jax.Array:
    """a_u: channel ``unit`` averaged over the batch and every position (feature maps
    ``[B, H, W, C]``), or entry ``unit`` averaged over the batch (vectors ``[B, K]``).

    Example:
      >>> a = jnp.arange(8.0).reshape(1, 2, 2, 2)
      >>> float(unit_activation(a, 1))  # mean of 1, 3, 5, 7
      4.0
    """
    return jnp.mean(activation[..., unit])


def per_channel(value: jax.Array | float, channels: int) -> jax.Array:
    """A scalar or ``[C]`` statistic as float32 ``[1, 1, C]`` (broadcasts over an image)."""
    return jnp.broadcast_to(jnp.asarray(value, jnp.float32), (channels,)).reshape(1, 1, channels)


def check_unit(shape: tuple[int, ...], layer: str, unit: int) -> None:
    """Raises a one-line ValueError unless ``unit`` indexes the last axis of ``shape``."""
    n = shape[-1]
    if not 0 <= unit < n:
        kind = "channels" if len(shape) == 4 else "outputs"
        raise ValueError(
            f"unit {unit} is out of range: layer {layer!r} has {n} {kind} (0..{n - 1})"
        )


@functools.partial(jax.jit, static_argnames=("module", "layer", "steps", "jitter_px", "blur"))
def _ascend(
    module, variables, x0, key, unit, mean, std, lr, l2, tv, *, layer, steps, jitter_px, blur
):
    # the unit is traced: one compiled ascent serves every unit of a layer
    def activation(z_HxWxC):
        x_1xHxWxC = (mean + std * z_HxWxC)[None]
        return unit_activation(layer_output(module, variables, x_1xHxWxC, layer), unit)

    def prior(z_HxWxC):
        return l2 * l2_penalty(z_HxWxC) + tv * total_variation(z_HxWxC)

    def step(z_HxWxC, t):
        step_key = jax.random.fold_in(key, t)
        value, g = jax.value_and_grad(lambda z: activation(jitter(z, step_key, jitter_px)))(z_HxWxC)
        g = g / (jnp.sqrt(jnp.mean(jnp.square(g))) + 1e-12) - jax.grad(prior)(z_HxWxC)
        return gaussian_blur(z_HxWxC + lr * g, blur), value

    z0 = (x0 - mean) / std
    z, values = jax.lax.scan(step, z0, jnp.arange(steps))
    return Ascent(mean + std * z, activation(z0), activation(z), values)


def maximize_unit(
    module: nn.Module,
    variables,
    x0_HxWxC: jax.Array,
    key: jax.Array,
    *,
    layer: str,
    unit: int,
    mean: jax.Array | float = 0.0,
    std: jax.Array | float = 1.0,
    steps: int = 200,
    lr: float = 0.1,
    jitter_px: int = 1,
    l2: float = 0.3,
    tv: float = 0.3,
    blur: float = 0.0,
) -> Ascent:
    """Gradient ascent from ``x0`` on unit ``unit`` of ``layer`` (module docstring).

    Args:
      module, variables: the model and its variables (evaluation mode).
      x0_HxWxC: the starting image, in the model's input space (e.g. the data mean plus a
        little noise).
      mean, std: the data's per-channel mean m and standard deviation s (``[C]`` or
        scalars); the priors pull towards m in units of s.
      key: PRNG key for the jitter; the result is a function of (inputs, key).
      layer: a name from :func:`dlcore.viz.probe.layer_shapes` (``output`` for class scores).
      unit: channel or output index.
      steps: ascent steps (>= 1).
      lr: step length η, in data standard deviations per step.
      jitter_px: J, the largest random shift per step (0 = none).
      l2, tv: the weights λ_2 and λ_TV.
      blur: σ of the Gaussian blur after each step, in pixels (0 = none; 0.3-0.5 is
        gentle, since it acts every step).

    Raises:
      ValueError: for an unknown layer (listing the valid ones), a unit out of range, an
        input the model cannot read, or a bad setting.

    Example:
      >>> from dlcore.models import LeNet5
      >>> model = LeNet5(out_features=3, image_size=16)
      >>> x0 = 0.1 * jax.random.normal(jax.random.key(1), (16, 16, 1))
      >>> variables = model.init(jax.random.key(0), x0[None], train=False)
      >>> r = maximize_unit(model, variables, x0, jax.random.key(2), layer="conv2", unit=3,
      ...                   steps=20)
      >>> r.image.shape, bool(r.end > r.start)
      ((16, 16, 1), True)
    """
    if steps < 1 or not lr > 0 or l2 < 0 or tv < 0 or blur < 0 or jitter_px < 0:
        raise ValueError(
            f"maximize needs steps >= 1, lr > 0 and l2, tv, blur, jitter >= 0; got steps "
            f"{steps}, lr {lr}, l2 {l2}, tv {tv}, blur {blur}, jitter {jitter_px}"
        )
    if x0_HxWxC.ndim != 3:
        raise ValueError(f"maximize needs one image [H, W, C]; got shape {x0_HxWxC.shape}")
    shape = check_layer(layer_shapes(module, variables, x0_HxWxC[None]), layer)
    check_unit(shape, layer, unit)
    mean_11C, std_11C = (per_channel(v, x0_HxWxC.shape[-1]) for v in (mean, std))
    if not bool(jnp.all(std_11C > 0)):
        raise ValueError(f"maximize needs a positive data std per channel; got {std}")
    return _ascend(
        module,
        variables,
        jnp.asarray(x0_HxWxC, jnp.float32),
        key,
        jnp.int32(unit),
        mean_11C,
        std_11C,
        jnp.float32(lr),
        jnp.float32(l2),
        jnp.float32(tv),
        layer=layer,
        steps=int(steps),
        jitter_px=int(jitter_px),
        blur=float(blur),
    )
