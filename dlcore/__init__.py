"""dlcore: the classic deep-learning curriculum as Flax linen modules and Optax chains."""

from dlcore.activations import ACTIVATIONS, get_activation
from dlcore.losses import LOSSES, reduce_loss, softmax_cross_entropy, squared_error
from dlcore.models import MLP, MODELS, build_model
from dlcore.state import TrainState
from dlcore.tasks import SupervisedTask, Task, classification, regression

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "MODELS",
    "SupervisedTask",
    "Task",
    "TrainState",
    "build_model",
    "classification",
    "get_activation",
    "reduce_loss",
    "regression",
    "softmax_cross_entropy",
    "squared_error",
]
