"""Task registry: ``[task] name = ...`` -> its config section.

Each section lives beside its task: it declares the models and chains the task builds
(``model_roles``, ``optimizer_roles``), the data fields it reads (``needs``) and how to
build the task (``build``). This file only lists them.
"""

from typing import NamedTuple

from dlcore.tasks.autoencoder import AutoencoderConfig
from dlcore.tasks.context import TaskSection
from dlcore.tasks.dbn import DBNConfig
from dlcore.tasks.embedding import EmbeddingConfig
from dlcore.tasks.gan import GANConfig
from dlcore.tasks.multilabel import MultilabelConfig
from dlcore.tasks.multitask import MultitaskConfig
from dlcore.tasks.perceptron import PerceptronConfig
from dlcore.tasks.pixelcnn import PixelCNNConfig
from dlcore.tasks.rbm import RBMConfig
from dlcore.tasks.segmentation import SegmentationConfig
from dlcore.tasks.seq2seq import Seq2seqConfig
from dlcore.tasks.sequence import TaggingConfig
from dlcore.tasks.stacked_autoencoder import StackedAutoencoderConfig
from dlcore.tasks.supervised import (
    BinaryClassificationConfig,
    ClassificationConfig,
    RegressionConfig,
)
from dlcore.tasks.tbptt import TruncatedBPTTConfig
from dlcore.tasks.universal_approximation import UniversalApproximationConfig
from dlcore.tasks.vae import VAEConfig
from dlcore.tasks.word2vec import Word2VecConfig


class TaskEntry(NamedTuple):
    config: type[TaskSection]
    summary: str


TASKS: dict[str, TaskEntry] = {
    "classification": TaskEntry(
        ClassificationConfig, "K-way classification (cross-entropy, hinge or sparsemax)"
    ),
    "binary_classification": TaskEntry(
        BinaryClassificationConfig, "two classes, one score (logistic, SVM)"
    ),
    "regression": TaskEntry(RegressionConfig, "real targets (squared error...)"),
    "multitask": TaskEntry(MultitaskConfig, "several classification targets, one head each"),
    "multilabel": TaskEntry(MultilabelConfig, "label sets: sparsemax or sigmoid loss, F1"),
    "embedding": TaskEntry(EmbeddingConfig, "metric learning, contrastive or triplet loss"),
    "perceptron": TaskEntry(PerceptronConfig, "online perceptron; its rule is the update"),
    "autoencoder": TaskEntry(AutoencoderConfig, "reconstruct x through a narrow code (no labels)"),
    "stacked_autoencoder": TaskEntry(
        StackedAutoencoderConfig, "autoencoders stacked and trained greedily, layer by layer"
    ),
    "gan": TaskEntry(GANConfig, "generator vs discriminator, non-saturating GAN loss"),
    "segmentation": TaskEntry(SegmentationConfig, "a class per pixel; pixel accuracy and IoU"),
    "tagging": TaskEntry(TaggingConfig, "per-step classification (tagging, generation, LM)"),
    "truncated_bptt": TaskEntry(
        TruncatedBPTTConfig, "per-step classification over streams, state carried across chunks"
    ),
    "seq2seq": TaskEntry(
        Seq2seqConfig, "encoder-decoder: teacher forcing; exact match, BLEU, beam search"
    ),
    "word2vec": TaskEntry(Word2VecConfig, "skip-gram / CBOW word vectors, negative sampling"),
    "rbm": TaskEntry(RBMConfig, "restricted Boltzmann machine, CD-k or persistent CD"),
    "dbn": TaskEntry(DBNConfig, "deep belief net: RBMs stacked and trained greedily"),
    "vae": TaskEntry(VAEConfig, "variational autoencoder: ELBO, KL warm-up, IWAE likelihood"),
    "pixelcnn": TaskEntry(PixelCNNConfig, "autoregressive binary images: exact NLL, bits/dim"),
    "universal_approximation": TaskEntry(
        UniversalApproximationConfig, "1-D fits by one hidden layer of growing widths, side by side"
    ),
}
