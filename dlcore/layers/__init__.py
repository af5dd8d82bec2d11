"""Layers with parameters or train/eval behaviour; the math they use lives in plain functions."""

from dlcore.layers.attention import AdditiveAttention, additive_attention
from dlcore.layers.conv import Conv2D, conv2d
from dlcore.layers.dropout import (
    DropConnectDense,
    Dropout,
    GaussianWeightNoiseDense,
    dropout,
)
from dlcore.layers.maxout import Maxout, maxout
from dlcore.layers.norm import BatchNorm, LayerNorm, LocalResponseNorm, local_response_norm
from dlcore.layers.pooling import avg_pool, max_pool
from dlcore.layers.prelu import PReLU

__all__ = [
    "AdditiveAttention",
    "Conv2D",
    "additive_attention",
    "avg_pool",
    "conv2d",
    "max_pool",
    "BatchNorm",
    "DropConnectDense",
    "Dropout",
    "GaussianWeightNoiseDense",
    "LayerNorm",
    "LocalResponseNorm",
    "Maxout",
    "PReLU",
    "dropout",
    "local_response_norm",
    "maxout",
]
