"""The task interface: what the generic training loop needs from any kind of training.

A task owns the model, the loss and the optimizer chain and exposes three pure functions.
The loop jits them once, donates the state, feeds batches and aggregates metrics; it knows
nothing about what is being trained. Supervised learning, language models, GANs, RBMs and
the perceptron are all tasks.

Metric convention: ``train_step`` and ``eval_step`` return *sums* over the batch plus a
``"count"`` entry (the number of real, unpadded examples), so the loop can aggregate over
many batches and over padded eval batches exactly: mean = sum / count.
"""

from typing import Literal, Protocol

import jax
import jax.numpy as jnp

from dlcore.state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
Mode = Literal["max", "min"]


class Task(Protocol):
    """Interface of a trainable task (see module docstring for the metric convention).

    Attributes:
      metric_modes: every metric the task reports (besides ``count``), mapped to whether
        larger (``"max"``) or smaller (``"min"``) is better.
      default_metric: the validation metric that selects the best checkpoint by default.
      total_metrics: (optional) metrics reported as totals over a log window rather than
        per-example means, e.g. the perceptron's mistakes per epoch.
    """

    metric_modes: dict[str, Mode]
    default_metric: str

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        """Creates the initial state; ``batch`` is an example batch used only for shapes."""
        ...

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        """One optimizer update. Pure: same inputs give the same outputs."""
        ...

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        """Metric sums on one batch without updating anything (dropout off, BN frozen)."""
        ...


def means(metric_sums: dict[str, float], totals: tuple[str, ...] = ()) -> dict[str, float]:
    """Turns metric sums with a ``count`` entry into per-example means.

    Metrics named in ``totals`` (a task's ``total_metrics``, e.g. the perceptron's
    mistakes) are reported as plain totals instead.
    """
    count = max(float(metric_sums["count"]), 1e-12)
    return {
        k: float(v) if k in totals else float(v) / count
        for k, v in metric_sums.items()
        if k != "count"
    }


def init_state(model, optimizer, rng: jax.Array, x: jax.Array) -> TrainState:
    """The initial TrainState of a Flax model trained by an optax chain.

    ``rng`` is split three ways: parameter init, init-time dropout, and the base key that
    later steps fold their step number into. ``x`` is an example input (shapes only).
    """
    k_params, k_dropout, k_state = jax.random.split(rng, 3)
    variables = dict(model.init({"params": k_params, "dropout": k_dropout}, x, train=False))
    params = variables.pop("params")
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=variables,
        opt_state=optimizer.init(params),
        rng=k_state,
    )
