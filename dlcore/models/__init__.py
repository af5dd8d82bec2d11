"""Models: Flax linen modules and the registry that builds them from config."""

from dlcore.models.lenet import LeNet5
from dlcore.models.mlp import MLP
from dlcore.models.multihead import MultiHeadMLP
from dlcore.models.registry import MODELS, LeNet5Config, MLPConfig, build_model

__all__ = ["LeNet5", "LeNet5Config", "MLP", "MLPConfig", "MODELS", "MultiHeadMLP", "build_model"]
