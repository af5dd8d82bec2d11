"""The names ``import dlcore`` offers, each loaded from its module on first use (PEP 562).

``import dlcore`` runs before any ``dlcore.*`` module, the ``dlcore`` command's included:
loading the flat API eagerly there would import JAX, Flax, Optax and orbax (about a
second) for ``dlcore --help`` too. The first name asked for loads all of them, in the
order the eager imports had, so ``dlcore.sparsemax`` is the function, not its module.

Example:
  >>> import dlcore
  >>> dlcore.fit is dlcore.engine.loop.fit
  True
"""

import importlib
import sys

# name -> the module it comes from
EXPORTS = {
    "ACTIVATIONS": "dlcore.activations",
    "get_activation": "dlcore.activations",
    "sparsemax": "dlcore.activations",
    "fit": "dlcore.engine.loop",
    "TrainState": "dlcore.engine.state",
    "Task": "dlcore.engine.task",
    "gradcheck": "dlcore.gradcheck",
    "LOSSES": "dlcore.losses",
    "get_loss": "dlcore.losses",
    "reduce_loss": "dlcore.losses",
    "softmax_cross_entropy": "dlcore.losses",
    "squared_error": "dlcore.losses",
    "MLP": "dlcore.models",
    "MODELS": "dlcore.models.registry",
    "MultiHeadMLP": "dlcore.models",
    "build_model": "dlcore.models.registry",
    "OPTIMIZERS": "dlcore.optim",
    "build_optimizer": "dlcore.optim",
    "RNN": "dlcore.recurrent",
    "Bidirectional": "dlcore.recurrent",
    "GRUCell": "dlcore.recurrent",
    "LSTMCell": "dlcore.recurrent",
    "StackedRNN": "dlcore.recurrent",
    "SupervisedTask": "dlcore.tasks",
    "classification": "dlcore.tasks",
    "regression": "dlcore.tasks",
    "PerceptronTask": "dlcore.tasks.perceptron",
    "binary_classification": "dlcore.tasks.supervised",
}


def _load_all() -> None:
    package = sys.modules["dlcore"]
    for name, module in EXPORTS.items():
        setattr(package, name, getattr(importlib.import_module(module), name))


def __getattr__(name: str):
    """``dlcore.<name>`` for a flat-API name; other names (submodules) are not ours."""
    if name not in EXPORTS:
        raise AttributeError(f"module 'dlcore' has no attribute {name!r}")
    _load_all()
    return getattr(sys.modules["dlcore"], name)


def __dir__() -> list[str]:
    return sorted(set(vars(sys.modules["dlcore"])) | set(EXPORTS))
