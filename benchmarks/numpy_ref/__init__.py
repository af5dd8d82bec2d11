"""Hand-written NumPy models with manually derived backward passes (no autodiff).

Every model works in float32 or float64: the dtype follows the inputs and parameters.
Parameters are flat dicts of arrays; ``loss_and_grads`` returns a gradient dict with the same
keys, so the optimizers in :mod:`benchmarks.numpy_ref.optim` apply to any of them.
"""

from benchmarks.numpy_ref import attention, conv, gru, losses, lstm, mlp, optim, resnet, rnn

__all__ = ["attention", "conv", "gru", "losses", "lstm", "mlp", "optim", "resnet", "rnn"]
