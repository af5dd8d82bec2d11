"""Layers with parameters or train/eval behaviour; the math they use lives in plain functions."""

from dlcore.layers.attention import AdditiveAttention, additive_attention
from dlcore.layers.attention_scores import (
    Attention,
    attend,
    concat_scores,
    dot_scores,
    entmax15,
    general_scores,
    normalise,
    padding_mask,
    scaled_dot_scores,
)
from dlcore.layers.conv import Conv1D, Conv2D, conv1d, conv2d
from dlcore.layers.conv_transpose import ConvTranspose2D, conv_transpose2d
from dlcore.layers.dropout import (
    DropConnectDense,
    Dropout,
    GaussianWeightNoiseDense,
    dropout,
)
from dlcore.layers.local import LocallyConnected2D, locally_connected2d
from dlcore.layers.masked_conv import MaskedConv2D, causal_mask
from dlcore.layers.maxout import Maxout, maxout
from dlcore.layers.multihead import MultiHeadAttention, multi_head_attention
from dlcore.layers.norm import (
    BatchNorm,
    LayerNorm,
    LocalResponseNorm,
    batch_norm,
    local_response_norm,
)
from dlcore.layers.pooling import (
    AvgPool,
    AvgPool1D,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool,
    MaxPool1D,
    avg_pool,
    avg_pool1d,
    global_avg_pool,
    global_max_pool,
    max_pool,
    max_pool1d,
)
from dlcore.layers.prelu import PReLU

__all__ = [
    "AdditiveAttention",
    "Attention",
    "AvgPool",
    "AvgPool1D",
    "BatchNorm",
    "Conv1D",
    "Conv2D",
    "ConvTranspose2D",
    "DropConnectDense",
    "Dropout",
    "GaussianWeightNoiseDense",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "LayerNorm",
    "LocalResponseNorm",
    "LocallyConnected2D",
    "MaskedConv2D",
    "MaxPool",
    "MaxPool1D",
    "Maxout",
    "MultiHeadAttention",
    "PReLU",
    "additive_attention",
    "attend",
    "avg_pool",
    "avg_pool1d",
    "batch_norm",
    "causal_mask",
    "concat_scores",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "dot_scores",
    "dropout",
    "entmax15",
    "general_scores",
    "global_avg_pool",
    "global_max_pool",
    "local_response_norm",
    "locally_connected2d",
    "max_pool",
    "max_pool1d",
    "maxout",
    "multi_head_attention",
    "normalise",
    "padding_mask",
    "scaled_dot_scores",
]
