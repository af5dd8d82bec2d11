"""Feature maps: what each channel of a layer responds to in one input (Zeiler & Fergus
2013 show these beside the input). Each map is scaled to [0, 1] on its own, so a weak
channel's pattern is visible too; the grid keeps the channel order.
"""

import flax.linen as nn
import jax
import numpy as np

from dlcore.viz.images import as_rgb, grid, to_unit
from dlcore.viz.probe import check_layer, layer_output, layer_shapes


def feature_maps(module: nn.Module, variables, x_HxWxC: jax.Array, layer: str) -> jax.Array:
    """The feature maps ``[H', W', C']`` of ``layer`` for one input image.

    Args:
      module, variables: the model and its variables (evaluation mode).
      x_HxWxC: one input in the model's input space.
      layer: a layer giving ``[B, H', W', C']`` (see :func:`dlcore.viz.probe.layer_shapes`).

    Raises:
      ValueError: for an unknown layer or one without feature maps (listing the valid
        ones), or an input the model cannot read.

    Example:
      >>> import jax.numpy as jnp
      >>> from dlcore.models import LeNet5
      >>> model = LeNet5(out_features=3, image_size=16)
      >>> x = jnp.ones((16, 16, 1))
      >>> variables = model.init(jax.random.key(0), x[None], train=False)
      >>> feature_maps(model, variables, x, "conv1").shape
      (16, 16, 6)
    """
    if x_HxWxC.ndim != 3:
        raise ValueError(f"feature maps need one image [H, W, C]; got shape {x_HxWxC.shape}")
    check_layer(layer_shapes(module, variables, x_HxWxC[None]), layer, feature_maps=True)
    return layer_output(module, variables, x_HxWxC[None], layer)[0]


def feature_grid(maps_HxWxC: np.ndarray, scale: int = 1, cols: int | None = None) -> np.ndarray:
    """One grey tile per channel, each min-max scaled on its own: an RGB grid image.

    Example:
      >>> feature_grid(np.random.rand(4, 4, 6), scale=2, cols=3).shape
      (19, 28, 3)
    """
    maps_CxHxW = np.moveaxis(np.asarray(maps_HxWxC), -1, 0)
    tiles = np.stack([as_rgb(to_unit(m)) for m in maps_CxHxW])
    return grid(tiles, cols=cols, scale=scale)
