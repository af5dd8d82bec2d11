"""Model registry: config names to Flax linen module classes."""

from dlcore.models.mlp import MLP

MODELS = {"mlp": MLP}

__all__ = ["MLP", "MODELS"]
