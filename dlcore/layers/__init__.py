"""Layers: Flax linen modules owning weights, and the pure functions they call."""

from dlcore.layers.attention import AdditiveAttention, additive_attention
from dlcore.layers.conv import Conv2D, conv2d
from dlcore.layers.pooling import avg_pool, max_pool

__all__ = ["AdditiveAttention", "Conv2D", "additive_attention", "avg_pool", "conv2d", "max_pool"]
