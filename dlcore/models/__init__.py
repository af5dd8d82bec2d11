"""Models: Flax linen modules, each with its config section.

The registry of them is :mod:`dlcore.models.registry` (not re-exported here: it lists the
sequence-to-sequence models too, whose modules import pieces of this package).
"""

from dlcore.models.dcgan import (
    DCGANDiscriminator,
    DCGANDiscriminatorConfig,
    DCGANGenerator,
    DCGANGeneratorConfig,
)
from dlcore.models.lenet import LeNet5, LeNet5Config
from dlcore.models.mlp import MLP, LinearConfig, MLPConfig
from dlcore.models.multihead import MultiHeadMLP, MultiHeadMLPConfig
from dlcore.models.multitower import MultiTowerMLP, MultiTowerMLPConfig
from dlcore.models.pixelcnn import PixelCNN, PixelCNNConfig
from dlcore.models.rnn import RNNConfig, SequenceModel

__all__ = [
    "DCGANDiscriminator",
    "DCGANDiscriminatorConfig",
    "DCGANGenerator",
    "DCGANGeneratorConfig",
    "MLP",
    "LeNet5",
    "LeNet5Config",
    "LinearConfig",
    "MLPConfig",
    "MultiHeadMLP",
    "MultiHeadMLPConfig",
    "MultiTowerMLP",
    "MultiTowerMLPConfig",
    "PixelCNN",
    "PixelCNNConfig",
    "RNNConfig",
    "SequenceModel",
]
