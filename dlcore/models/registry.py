"""Model registry: ``[model] name = ...`` -> its config section.

Each section lives beside its module and knows what it needs from the data (``needs``)
and how to build the module (``make``); this file only lists them.
"""

from typing import NamedTuple

import flax.linen as nn

from dlcore.config.section import Section
from dlcore.data.dataset import DataSpec
from dlcore.models.alexnet import AlexNetConfig
from dlcore.models.dcgan import DCGANDiscriminatorConfig, DCGANGeneratorConfig
from dlcore.models.googlenet import GoogLeNetConfig
from dlcore.models.lenet import LeNet5Config
from dlcore.models.mlp import LinearConfig, MLPConfig
from dlcore.models.multihead import MultiHeadMLPConfig
from dlcore.models.multitower import MultiTowerMLPConfig
from dlcore.models.pixelcnn import PixelCNNConfig
from dlcore.models.resnet import ResNetConfig
from dlcore.models.rnn import RNNConfig
from dlcore.models.text_cnn import TextCNNConfig
from dlcore.models.unet import UNetConfig
from dlcore.models.vgg import VGGConfig
from dlcore.seq2seq.captioner import ShowAttendTellConfig
from dlcore.seq2seq.rnn_model import RNNSeq2SeqConfig
from dlcore.seq2seq.transformer_lm import TransformerLMConfig
from dlcore.seq2seq.transformer_model import TransformerSeq2SeqConfig


class ModelEntry(NamedTuple):
    config: type[Section]  # has needs() and make(out_features, data)
    summary: str


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(MLPConfig, "multi-layer perceptron (dropout, batch norm)"),
    "linear": ModelEntry(LinearConfig, "one dense layer (logistic regression, SVM)"),
    "multihead_mlp": ModelEntry(MultiHeadMLPConfig, "shared trunk, one head per target"),
    "multitower_mlp": ModelEntry(
        MultiTowerMLPConfig, "one tower per target, soft sharing by a distance penalty"
    ),
    "lenet5": ModelEntry(LeNet5Config, "LeNet-5 CNN for square grey images (conv, max-pool)"),
    "rnn": ModelEntry(RNNConfig, "recurrent stack (RNN/LSTM/GRU) with a dense head"),
    "text_cnn": ModelEntry(TextCNNConfig, "1-D CNN over token embeddings, max over time"),
    "alexnet": ModelEntry(AlexNetConfig, "AlexNet-style CNN (ReLU, LRN, overlapping pools)"),
    "vgg": ModelEntry(VGGConfig, "VGG stages of 3x3 convs and 2x2 max-pools, dense head"),
    "googlenet": ModelEntry(GoogLeNetConfig, "mini-GoogLeNet of Inception modules"),
    "resnet": ModelEntry(ResNetConfig, "ResNet (basic/bottleneck) or plain net, batch norm"),
    "unet": ModelEntry(UNetConfig, "U-Net: per-pixel logits via skips and transposed convs"),
    "dcgan_generator": ModelEntry(
        DCGANGeneratorConfig, "DCGAN generator: noise -> image by transposed convs, batch norm"
    ),
    "dcgan_discriminator": ModelEntry(
        DCGANDiscriminatorConfig, "DCGAN discriminator: strided convs, leaky ReLU, batch norm"
    ),
    "pixelcnn": ModelEntry(
        PixelCNNConfig, "PixelCNN: masked convolutions, one Bernoulli logit per pixel"
    ),
    "rnn_seq2seq": ModelEntry(
        RNNSeq2SeqConfig, "RNN encoder-decoder (LSTM/GRU), optional Bahdanau/Luong attention"
    ),
    "show_attend_tell": ModelEntry(
        ShowAttendTellConfig, "image captioner: CNN encoder, LSTM decoder with visual attention"
    ),
    "transformer_seq2seq": ModelEntry(
        TransformerSeq2SeqConfig, "Transformer encoder-decoder (pre/post-LN, KV-cache decoding)"
    ),
    "transformer_lm": ModelEntry(
        TransformerLMConfig, "decoder-only causal Transformer language model (per-step logits)"
    ),
}


def build_model(cfg: Section, out_features, data: DataSpec | None = None) -> nn.Module:
    """The Flax module for a validated model section (``data`` sizes token inputs)."""
    return cfg.make(out_features, data)
