"""Hand-written pure-JAX versions of the NumPy baselines (jax.numpy + jax.grad + a plain update).

They take the same parameter dicts as :mod:`benchmarks.numpy_ref`, so the tests can compare
gradients directly. They exist to measure dlcore's framework overhead: no flax, no optax, no
task abstraction, just the loss, ``jax.grad`` and the update written out.
"""

from benchmarks.jax_ref import attention, conv, gru, lstm, mlp, optim, resnet, rnn

__all__ = ["attention", "conv", "gru", "lstm", "mlp", "optim", "resnet", "rnn"]
