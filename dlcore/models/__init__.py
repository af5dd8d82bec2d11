"""Models: Flax linen modules, each with its config section, and the registry of them."""

from dlcore.models.dcgan import (
    DCGANDiscriminator,
    DCGANDiscriminatorConfig,
    DCGANGenerator,
    DCGANGeneratorConfig,
)
from dlcore.models.lenet import LeNet5, LeNet5Config
from dlcore.models.mlp import MLP, LinearConfig, MLPConfig
from dlcore.models.multihead import MultiHeadMLP, MultiHeadMLPConfig
from dlcore.models.pixelcnn import PixelCNN, PixelCNNConfig
from dlcore.models.registry import MODELS, ModelEntry, build_model
from dlcore.models.rnn import RNNConfig, SequenceModel

__all__ = [
    "DCGANDiscriminator",
    "DCGANDiscriminatorConfig",
    "DCGANGenerator",
    "DCGANGeneratorConfig",
    "MLP",
    "MODELS",
    "LeNet5",
    "LeNet5Config",
    "LinearConfig",
    "MLPConfig",
    "ModelEntry",
    "MultiHeadMLP",
    "MultiHeadMLPConfig",
    "PixelCNN",
    "PixelCNNConfig",
    "RNNConfig",
    "SequenceModel",
    "build_model",
]
