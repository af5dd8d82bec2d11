"""Layers with parameters or train/eval behaviour; the math they use lives in plain functions."""

from dlcore.layers.dropout import (
    DropConnectDense,
    Dropout,
    GaussianWeightNoiseDense,
    dropout,
)
from dlcore.layers.maxout import Maxout, maxout
from dlcore.layers.norm import BatchNorm, LayerNorm, LocalResponseNorm, local_response_norm
from dlcore.layers.prelu import PReLU

__all__ = [
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
