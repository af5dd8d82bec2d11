"""Models: Flax linen modules and the registry that builds them from config."""

from dlcore.models.mlp import MLP
from dlcore.models.multihead import MultiHeadMLP
from dlcore.models.registry import MODELS, MLPConfig, build_model

__all__ = ["MLP", "MLPConfig", "MODELS", "MultiHeadMLP", "build_model"]
