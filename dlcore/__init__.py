"""dlcore: the classic deep-learning curriculum as Flax linen modules and Optax chains.

The flat API re-exports what research code reaches for most; everything else lives in its
concept's module (``dlcore.layers``, ``dlcore.recurrent``, ``dlcore.optim``, ...).
"""

# The flat API loads on first use (dlcore.flat_api): `dlcore --help` needs none of it.
from dlcore.flat_api import __dir__ as __dir__
from dlcore.flat_api import __getattr__ as __getattr__

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
