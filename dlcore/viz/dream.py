"""DeepDream (Mordvintsev et al. 2015): a photograph changed by gradient ascent so that a
layer's feature maps grow, at several scales ("octaves") so that patterns of every size
appear.

    J(x)     = ½ mean(f_l(jitter(x))²)                the layer's squared L2 norm
    x       <- x + η s ∇J(x) / mean|∇J(x)|             ``steps`` times per octave

with s the data's per-channel standard deviation, so η is a step in its units.

Octaves go from small to large: with n octaves and scale s the image is worked on at
sizes (H, W) / s^(n-1), ..., (H, W) / s, (H, W). The detail each octave adds (its result
minus the photograph at that size) is enlarged and added to the photograph at the next
size, so the final image keeps the photograph's full resolution.

Since the model only runs up to the layer (:func:`dlcore.viz.probe.layer_output`), any
size works for a layer reached through convolutions and pooling only; a layer behind a
dense layer is limited to the model's own input size, and the error says so.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.viz.maximize import per_channel
from dlcore.viz.priors import jitter
from dlcore.viz.probe import check_reads, layer_output


@functools.partial(jax.jit, static_argnames=("module", "layer", "steps", "jitter_px"))
def _dream_octave(module, variables, x_HxWxC, key, lr_C, *, layer, steps, jitter_px):
    def objective(x_HxWxC, step_key):
        a = layer_output(module, variables, jitter(x_HxWxC, step_key, jitter_px)[None], layer)
        return 0.5 * jnp.mean(jnp.square(a))

    def step(x_HxWxC, t):
        value, g = jax.value_and_grad(objective)(x_HxWxC, jax.random.fold_in(key, t))
        return x_HxWxC + lr_C * g / (jnp.mean(jnp.abs(g)) + 1e-12), value

    return jax.lax.scan(step, x_HxWxC, jnp.arange(steps))


def octave_sizes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """``[(H, W) / scale^(n-1), ..., (H, W)]`` rounded, smallest first.

    Example:
      >>> octave_sizes(64, 48, 3, 2.0)
      [(16, 12), (32, 24), (64, 48)]
    """
    return [
        (max(1, round(height / scale**k)), max(1, round(width / scale**k)))
        for k in range(octaves - 1, -1, -1)
    ]


def deep_dream(
    module: nn.Module,
    variables,
    image_HxWxC: jax.Array,
    key: jax.Array,
    *,
    layer: str,
    octaves: int = 3,
    scale: float = 1.4,
    steps: int = 20,
    lr: float = 0.02,
    std: jax.Array | float = 1.0,
    jitter_px: int = 2,
) -> tuple[jax.Array, jax.Array]:
    """The dreamed image ``[H, W, C]`` and J after every step of every octave.

    Args:
      module, variables: the model and its variables (evaluation mode).
      image_HxWxC: the photograph in the model's input space (any size the layer can read).
      key: PRNG key for the jitter (octave k uses ``fold_in(key, k)``).
      layer: a layer with feature maps ``[B, H, W, C]``.
      octaves: number of scales n (>= 1); scale: s > 1, the size ratio between octaves.
      steps: ascent steps per octave; lr: step length η; jitter_px: largest random shift.
      std: the data's per-channel standard deviation s (``[C]`` or a scalar).

    Raises:
      ValueError: for a bad setting, or an octave size the model cannot read up to the
        layer (naming the size and why).

    Example:
      >>> from dlcore.models import LeNet5
      >>> model = LeNet5(out_features=3, image_size=16)
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)), train=False)
      >>> photo = jax.random.uniform(jax.random.key(1), (48, 40, 1))
      >>> image, values = deep_dream(model, variables, photo, jax.random.key(2),
      ...                            layer="conv2", octaves=2, steps=5)
      >>> image.shape, values.shape
      ((48, 40, 1), (10,))
    """
    if octaves < 1 or not scale > 1 or steps < 1 or not lr > 0 or jitter_px < 0:
        raise ValueError(
            f"dream needs octaves >= 1, scale > 1, steps >= 1, lr > 0 and jitter >= 0; got "
            f"octaves {octaves}, scale {scale}, steps {steps}, lr {lr}, jitter {jitter_px}"
        )
    if image_HxWxC.ndim != 3:
        raise ValueError(f"dream needs one image [H, W, C]; got shape {image_HxWxC.shape}")
    height, width, channels = image_HxWxC.shape
    sizes = octave_sizes(height, width, octaves, scale)
    for h, w in sizes:  # every size is checked before anything is computed
        shape = check_reads(module, variables, jnp.zeros((1, h, w, channels)), layer)
        if len(shape) != 4:
            raise ValueError(
                f"dream needs a layer with feature maps [H, W, C]; {layer!r} gives "
                f"{list(shape[1:])}"
            )
    base_HxWxC = jnp.asarray(image_HxWxC, jnp.float32)
    detail = jnp.zeros((*sizes[0], channels), jnp.float32)
    values = []
    for k, (h, w) in enumerate(sizes):
        octave_base = jax.image.resize(base_HxWxC, (h, w, channels), "linear")
        detail = jax.image.resize(detail, (h, w, channels), "linear")
        dreamed, octave_values = _dream_octave(
            module,
            variables,
            octave_base + detail,
            jax.random.fold_in(key, k),
            lr * per_channel(std, channels),
            layer=layer,
            steps=int(steps),
            jitter_px=int(jitter_px),
        )
        detail = dreamed - octave_base
        values.append(octave_values)
    return base_HxWxC + detail, jnp.concatenate(values)
