"""Warm starts: a task whose initial parameters are partly given values instead of draws.

:class:`WarmStartTask` wraps any task. Its ``init`` calls the inner task's ``init`` and then
overlays given leaves, addressed by their ``/``-joined paths, on ``params`` and
``model_state``; everything else (steps, metrics, checkpoints) is the inner task's. So a
transfer run checkpoints and resumes like any other: a resumed run restores its own
checkpoint over the initial state and never needs the values again. Where the values come
from (another run's checkpoint) is decided outside the engine, by
:mod:`dlcore.experiment.transfer`.

The optimizer state stays the inner task's, made from the fresh draws: the chains dlcore
builds keep moments, counts and factors that start at constants, never at parameter values.
"""

import dataclasses
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data.dataset import Dataset
from dlcore.engine.state import TrainState
from dlcore.engine.task import Batch, Metrics, Task

Leaves = Mapping[str, np.ndarray]  # "/"-joined path -> value


def overlay(tree: Any, values: Leaves) -> Any:
    """``tree`` with the leaves at the paths in ``values`` replaced by those values, each
    cast to the replaced leaf's dtype.

    Raises:
      ValueError: if a path of ``values`` is not a leaf of ``tree``, or a value's shape
        differs from the leaf's (one line naming the path and both shapes).

    Example:
      >>> tree = {"a": {"w": jnp.zeros(2)}, "b": jnp.zeros(1)}
      >>> overlay(tree, {"a/w": np.ones(2)})["a"]["w"].tolist()
      [1.0, 1.0]
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in flat]
    missing = sorted(set(values) - set(paths))
    if missing:
        raise ValueError(f"no leaf at {', '.join(missing)} to overlay")
    leaves = []
    for path, (_, leaf) in zip(paths, flat, strict=True):
        if path not in values:
            leaves.append(leaf)
            continue
        value = values[path]
        if tuple(value.shape) != tuple(leaf.shape):
            shapes = f"{list(value.shape)} vs the leaf's {list(leaf.shape)}"
            raise ValueError(f"{path}: the value's shape differs: {shapes}")
        leaves.append(jnp.asarray(value, dtype=leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves)


@dataclasses.dataclass(frozen=True, eq=False)
class WarmStartTask:
    """``task`` whose initial ``params`` and ``model_state`` carry the given leaves.

    Attributes:
      task: the task trained.
      params: ``/``-joined parameter path -> initial value.
      model_state: ``/``-joined ``model_state`` path -> initial value (batch statistics).

    Example:
      >>> class Drawn:  # the smallest task: its init draws the parameters
      ...     def init(self, rng, batch):
      ...         params = {"head": {"b": jax.random.normal(rng, (2,))}, "w": jnp.zeros(3)}
      ...         return TrainState(jnp.zeros((), jnp.int32), params, {}, (), rng)
      >>> warm = WarmStartTask(Drawn(), {"w": np.ones(3, np.float32)})
      >>> warm.init(jax.random.PRNGKey(0), {}).params["w"].tolist()
      [1.0, 1.0, 1.0]
    """

    task: Task
    params: Leaves
    model_state: Leaves = dataclasses.field(default_factory=dict)

    metric_modes = property(lambda self: self.task.metric_modes)
    default_metric = property(lambda self: self.task.default_metric)
    total_metrics = property(lambda self: self.task.total_metrics)
    members = property(lambda self: self.task.members)

    def make_order(self, num_examples: int, batch_size: int, seed: int):
        return self.task.make_order(num_examples, batch_size, seed)

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        state = self.task.init(rng, batch)
        return state.replace(
            params=overlay(state.params, self.params),
            model_state=overlay(state.model_state, self.model_state),
        )

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        return self.task.train_step(state, batch)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        return self.task.eval_step(state, batch)

    def summarize(self, metric_sums: dict, training_window: bool) -> dict:
        return self.task.summarize(metric_sums, training_window)

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        return self.task.report(state, data, directory)

    def snapshot(self, state: TrainState, data: Dataset, directory: pathlib.Path, epoch: int):
        self.task.snapshot(state, data, directory, epoch)
