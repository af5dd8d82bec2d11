"""Convolution filters as pictures: a first layer on RGB or grey images learns edge, colour
and blob detectors (Krizhevsky et al. 2012, fig. 3), visible directly in its kernels.

A conv layer is one whose parameters hold a 4-D ``kernel`` ``[KH, KW, C, F]``; layers are
found in the order the model calls them (:func:`dlcore.viz.probe.layer_shapes`), so the
first one is the layer that reads the image.

All filters of a layer share one symmetric scale (``0.5 + w / 2 max|w|``): zero weights are
mid-grey and filters can be compared with each other.
"""

import flax.linen as nn
import jax
import numpy as np

from dlcore.viz.images import as_rgb, grid, to_unit_symmetric
from dlcore.viz.probe import layer_shapes


def conv_kernels(module: nn.Module, variables, x: jax.Array) -> dict[str, jax.Array]:
    """``{layer: kernel [KH, KW, C, F]}`` for every conv layer, in call order.

    Example:
      >>> import jax.numpy as jnp
      >>> from dlcore.models import LeNet5
      >>> model = LeNet5(out_features=3, image_size=16)
      >>> x = jnp.zeros((1, 16, 16, 1))
      >>> kernels = conv_kernels(model, model.init(jax.random.key(0), x, train=False), x)
      >>> {name: k.shape for name, k in kernels.items()}
      {'conv1': (5, 5, 1, 6), 'conv2': (5, 5, 6, 16)}
    """
    kernels = {}
    for name in layer_shapes(module, variables, x):
        node = variables.get("params", {})
        for part in name.split("/"):
            node = node.get(part, {}) if hasattr(node, "get") else {}
        kernel = node.get("kernel") if hasattr(node, "get") else None
        if kernel is not None and getattr(kernel, "ndim", 0) == 4:
            kernels[name] = kernel
    return kernels


def pick_kernel(kernels: dict[str, jax.Array], layer: str | None = None) -> tuple[str, jax.Array]:
    """The first conv layer's kernel, or ``layer``'s.

    Raises:
      ValueError: if the model has no conv layer, or ``layer`` is not one (listing them).
    """
    if not kernels:
        raise ValueError("the model has no convolution layer (no 4-D kernel) to show filters of")
    if layer is None:
        return next(iter(kernels.items()))
    if layer not in kernels:
        raise ValueError(f"{layer!r} is not a convolution layer; conv layers: {', '.join(kernels)}")
    return layer, kernels[layer]


def filter_tiles(kernel_KHxKWxCxF: np.ndarray) -> tuple[np.ndarray, int]:
    """RGB tiles ``[N, KH, KW, 3]`` and the number of columns to lay them out in.

    C = 3: one colour tile per filter (N = F). C = 1: one grey tile per filter.
    Otherwise one grey tile per (filter, input channel) pair, a row per filter (N = F C).

    Example:
      >>> tiles, cols = filter_tiles(np.ones((5, 5, 6, 16)))
      >>> tiles.shape, cols
      ((96, 5, 5, 3), 6)
    """
    w = to_unit_symmetric(np.asarray(kernel_KHxKWxCxF, np.float64))
    kh, kw, c, f = w.shape
    if c in (1, 3):
        return np.stack([as_rgb(w[..., i]) for i in range(f)]), int(np.ceil(np.sqrt(f)))
    w_FxCxKHxKW = w.transpose(3, 2, 0, 1)
    tiles = w_FxCxKHxKW.reshape(f * c, kh, kw, 1)
    return np.repeat(tiles, 3, axis=-1), c


def filter_grid(kernel_KHxKWxCxF: np.ndarray, scale: int = 8) -> np.ndarray:
    """The filters of one conv layer as an RGB grid image (see :func:`filter_tiles`).

    Example:
      >>> filter_grid(np.random.randn(5, 5, 3, 4), scale=2).shape
      (23, 23, 3)
    """
    tiles, cols = filter_tiles(kernel_KHxKWxCxF)
    return grid(tiles, cols=cols, scale=scale)
