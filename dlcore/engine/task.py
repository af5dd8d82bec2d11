"""The task interface: everything the generic loop needs from any kind of training.

A task owns its models, losses and optax chains and exposes three pure functions. The loop
jits them once, donates the state, feeds named batches and aggregates metrics; it knows
nothing about what is being trained. Supervised learning, language models, autoencoders,
GANs and the perceptron are all tasks, and a population of members is a task that wraps
another one (:class:`dlcore.engine.population.PopulationTask`).

Metric convention: ``train_step`` and ``eval_step`` return *sums* over the batch plus a
``"count"`` entry (the number of real, unpadded examples), so the loop can aggregate over
many batches and over padded eval batches exactly: mean = sum / count.
"""

import pathlib
from typing import ClassVar, Literal, Protocol

import jax
import numpy as np

from dlcore.data.dataset import Dataset
from dlcore.data.iterator import BatchOrder
from dlcore.engine.state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
Mode = Literal["max", "min"]
BATCH_ORDERS = ("shuffled", "streams")


class Task(Protocol):
    """Interface of a trainable task (see the module docstring for the metric convention).

    Attributes:
      metric_modes: every metric the task reports (besides ``count``), mapped to whether
        larger (``"max"``) or smaller (``"min"``) is better.
      default_metric: the validation metric that selects the best checkpoint by default.
      total_metrics: metrics reported as totals over a log window rather than per-example
        means (the perceptron's mistakes per epoch); usually ``()``.
      members: how many independent members the state stacks (1, or a population's size);
        metrics then carry a leading ``[members]`` axis.
    """

    metric_modes: dict[str, Mode]
    default_metric: str
    total_metrics: tuple[str, ...]
    members: int

    def make_order(self, num_examples: int, batch_size: int, seed: int) -> BatchOrder:
        """The mini-batch order of the training split (a pure function of seed, epoch)."""
        ...

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        """Creates the initial state; ``batch`` is an example batch used only for shapes."""
        ...

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        """One optimizer update. Pure: same inputs give the same outputs."""
        ...

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        """Metric sums on one batch without updating anything (dropout off, BN frozen)."""
        ...

    def summarize(self, metric_sums: dict, training_window: bool) -> dict:
        """The reported metrics of metric sums added up over many batches: per-example means
        (and, for a training log window, the ``total_metrics`` as totals) unless a task's
        metrics are other functions of its sums (a segmentation task's IoU is
        TP / (TP + FP + FN) of the class totals). Floats, or lists of floats per member."""
        ...

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """After a completed run: writes the task's own figures (PNGs) into ``directory``
        and returns figures that are not per-example means (e.g. a GAN's modes covered);
        they go into ``summary.json`` under ``"report"``. Finite numbers only."""
        ...

    def snapshot(self, state: TrainState, data: Dataset, directory: pathlib.Path, epoch: int):
        """After each validation pass of a run with a directory: writes per-epoch pictures
        (a generator's sample grid) into ``directory`` (the run's ``snapshots/``). A pure
        function of ``state``: fixed keys, no state change, so resume stays exact."""
        ...


class TaskDefaults:
    """Defaults of the optional parts of :class:`Task` for single-member tasks.

    ``batch_order`` is ``"shuffled"`` (a fresh permutation per epoch) or ``"streams"``
    (truncated BPTT: batch n holds window n of every stream).
    """

    total_metrics: ClassVar[tuple[str, ...]] = ()
    members: ClassVar[int] = 1
    batch_order: ClassVar[str] = "shuffled"

    def make_order(self, num_examples: int, batch_size: int, seed: int) -> BatchOrder:
        return BatchOrder(num_examples, batch_size, seed, order=self.batch_order)

    def summarize(self, metric_sums: dict, training_window: bool) -> dict:
        return means(metric_sums, self.total_metrics if training_window else ())

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        del state, data, directory
        return {}

    def snapshot(self, state: TrainState, data: Dataset, directory: pathlib.Path, epoch: int):
        del state, data, directory, epoch


def means(metric_sums: dict, totals: tuple[str, ...] = ()) -> dict:
    """Turns metric sums with a ``count`` entry into per-example means.

    Metrics named in ``totals`` (a task's ``total_metrics``) stay plain totals. Scalars
    give floats; a population's ``[members]`` vectors give lists of floats, one per member.
    """
    count = np.maximum(np.asarray(metric_sums["count"], np.float64), 1e-12)
    out = {}
    for k, v in metric_sums.items():
        if k == "count":
            continue
        value = np.asarray(v, np.float64) if k in totals else np.asarray(v, np.float64) / count
        out[k] = float(value) if value.ndim == 0 else value.tolist()
    return out
