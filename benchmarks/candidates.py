"""Builders that wrap each implementation's training step as a timing ``Candidate``."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import numpy_ref
from benchmarks.jax_ref.optim import adam_init, make_train_step
from benchmarks.timing import Candidate, carry_stepper, lower_and_compile, not_available

LR = 1e-3


def numpy_candidate(loss_and_grads: Callable, params: dict, *batch) -> Candidate:
    """Hand-derived NumPy gradients plus the NumPy Adam update."""
    box = {"params": params, "opt": numpy_ref.optim.adam_init(params)}

    def step():
        loss, grads = loss_and_grads(box["params"], *batch)
        box["params"], box["opt"] = numpy_ref.optim.adam(box["params"], grads, box["opt"], LR)
        return loss

    return Candidate("NumPy", step)


def pure_jax_candidate(loss_fn: Callable, params: dict, *batch) -> Candidate:
    """``jax.value_and_grad`` of the hand-written loss plus a hand-written Adam, one jit."""
    params = jax.tree.map(jnp.asarray, params)
    batch = tuple(jnp.asarray(b) for b in batch)
    carry = (params, adam_init(params))
    compiled, stats = lower_and_compile(
        make_train_step(loss_fn, LR), carry, *batch, donate_argnums=0
    )
    return Candidate("pure JAX", carry_stepper(compiled, carry, *batch), compile=stats)


def dlcore_task_candidate(task, rng: jax.Array, batch: dict) -> Candidate:
    """A dlcore task's ``train_step`` jitted with the state donated, as the engine runs it."""
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    state = task.init(rng, batch)
    compiled, stats = lower_and_compile(task.train_step, state, batch, donate_argnums=0)
    return Candidate("dlcore", carry_stepper(compiled, state, batch), compile=stats)


def torch_candidate(builder: Callable, *args) -> Candidate:
    """PyTorch CPU eager, or "not available" when torch is not installed."""
    try:
        step = builder(*args)
    except ImportError:
        return not_available("torch", "torch is not installed (pip install -e '.[bench]')")
    return Candidate("torch", step)


def one_hot(tokens: np.ndarray, vocab: int, dtype=np.float32) -> np.ndarray:
    """``[..., vocab]`` one-hot encoding; every candidate gets the same float input."""
    return np.eye(vocab, dtype=dtype)[tokens]
