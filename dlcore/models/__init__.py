"""Model registry: config names to Flax linen module classes."""

from dlcore.models.mlp import MLP
from dlcore.models.multihead import MultiHeadMLP

MODELS = {"mlp": MLP, "multihead_mlp": MultiHeadMLP}

__all__ = ["MLP", "MODELS", "MultiHeadMLP"]
