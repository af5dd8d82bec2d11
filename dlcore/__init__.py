"""dlcore: the classic deep-learning curriculum as Flax linen modules and Optax chains.

The flat API re-exports what research code reaches for most; everything else lives in its
concept's module (``dlcore.layers``, ``dlcore.recurrent``, ``dlcore.optim``, ...).
"""

from dlcore.activations import ACTIVATIONS, get_activation, sparsemax
from dlcore.engine.loop import fit
from dlcore.engine.state import TrainState
from dlcore.engine.task import Task
from dlcore.gradcheck import gradcheck
from dlcore.losses import LOSSES, get_loss, reduce_loss, softmax_cross_entropy, squared_error
from dlcore.models import MLP, MODELS, MultiHeadMLP, build_model
from dlcore.optim import OPTIMIZERS, build_optimizer
from dlcore.recurrent import RNN, Bidirectional, GRUCell, LSTMCell, StackedRNN
from dlcore.tasks import SupervisedTask, classification, regression
from dlcore.tasks.perceptron import PerceptronTask
from dlcore.tasks.supervised import binary_classification

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "MODELS",
    "OPTIMIZERS",
    "RNN",
    "Bidirectional",
    "GRUCell",
    "LSTMCell",
    "MultiHeadMLP",
    "PerceptronTask",
    "StackedRNN",
    "SupervisedTask",
    "Task",
    "TrainState",
    "binary_classification",
    "build_model",
    "build_optimizer",
    "classification",
    "fit",
    "get_activation",
    "get_loss",
    "gradcheck",
    "reduce_loss",
    "regression",
    "softmax_cross_entropy",
    "sparsemax",
    "squared_error",
]
