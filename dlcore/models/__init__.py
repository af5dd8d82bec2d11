"""Models: Flax linen modules, each with its config section, and the registry of them."""

from dlcore.models.lenet import LeNet5, LeNet5Config
from dlcore.models.mlp import MLP, LinearConfig, MLPConfig
from dlcore.models.multihead import MultiHeadMLP, MultiHeadMLPConfig
from dlcore.models.registry import MODELS, ModelEntry, build_model
from dlcore.models.rnn import RNNConfig, SequenceModel

__all__ = [
    "MLP",
    "MODELS",
    "LeNet5",
    "LeNet5Config",
    "LinearConfig",
    "MLPConfig",
    "ModelEntry",
    "MultiHeadMLP",
    "MultiHeadMLPConfig",
    "RNNConfig",
    "SequenceModel",
    "build_model",
]
