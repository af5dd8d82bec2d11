"""Population training: many seeds and learning rates at once, as one compiled program.

Every member is an independent training run (its own initialization, dropout keys, batch
order and learning rate), but all members are stacked along a leading axis and trained as
one task by the one loop: :class:`PopulationTask` wraps any task with ``vmap``. Small
models leave most of a CPU or GPU idle; a population fills it, so M members cost far less
than M sequential trials.

The learning rate is made a per-member value by building each optax chain with learning
rate 1 and appending :func:`member_scale`, whose state holds the member's rate. For
SGD, momentum, Nesterov, Adagrad, RMSProp, Adam and AdamW the update is linear in the
learning rate, so each member follows the same rule as a trial run with that rate.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlcore.data.dataset import Dataset
from dlcore.data.iterator import StackedOrder
from dlcore.engine.loop import fit
from dlcore.engine.state import TrainState
from dlcore.engine.task import Batch, Metrics, Task
from dlcore.engine.train_config import TrainConfig


class MemberScaleState(NamedTuple):
    factor: jax.Array  # the member's learning rate


def member_scale() -> optax.GradientTransformation:
    """Multiplies updates by a factor kept in the optimizer state (set per member)."""

    def init(params):
        del params
        return MemberScaleState(jnp.ones((), jnp.float32))

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: u * state.factor.astype(u.dtype), updates), state

    return optax.GradientTransformation(init, update)


def set_member_factors(opt_state_M: Any, factors_M: jax.Array) -> Any:
    """Replaces the factor of every :class:`MemberScaleState` in a stacked opt state."""
    return jax.tree.map(
        lambda s: MemberScaleState(factors_M) if isinstance(s, MemberScaleState) else s,
        opt_state_M,
        is_leaf=lambda s: isinstance(s, MemberScaleState),
    )


@dataclasses.dataclass(frozen=True)
class PopulationTask:
    """``task`` trained as ``len(seeds)`` stacked members (see the module docstring).

    The state carries a leading member axis; batches carry one too (each member reads its
    own batch order); evaluation batches are shared. Metrics come back as ``[M]`` vectors.

    Attributes:
      task: the member task, built with optax chains that end in :func:`member_scale`
        and have learning rate 1.
      seeds: each member's seed (init, dropout and batch order); the loop's own seed is
        not used.
      learning_rates: each member's learning rate.
    """

    task: Task
    seeds: tuple[int, ...]
    learning_rates: tuple[float, ...]

    def __post_init__(self):
        if len(self.seeds) != len(self.learning_rates) or not self.seeds:
            raise ValueError(
                f"need one learning rate per seed; got {len(self.seeds)} seeds and "
                f"{len(self.learning_rates)} learning rates"
            )

    members = property(lambda self: len(self.seeds))
    metric_modes = property(lambda self: self.task.metric_modes)
    default_metric = property(lambda self: self.task.default_metric)
    total_metrics = property(lambda self: self.task.total_metrics)

    def make_order(self, num_examples: int, batch_size: int, seed: int) -> StackedOrder:
        del seed  # each member shuffles with its own
        return StackedOrder(
            tuple(self.task.make_order(num_examples, batch_size, s) for s in self.seeds)
        )

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        del rng
        keys = jnp.stack([jax.random.PRNGKey(s) for s in self.seeds])
        state = jax.vmap(lambda k: self.task.init(k, batch))(keys)
        rates = jnp.asarray(self.learning_rates, jnp.float32)
        return state.replace(opt_state=set_member_factors(state.opt_state, rates))

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        return jax.vmap(self.task.train_step)(state, batch)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        return jax.vmap(self.task.eval_step, in_axes=(0, None))(state, batch)

    def summarize(self, metric_sums: dict, training_window: bool) -> dict:
        """Each member's sums summarized by the member task: lists of floats per metric."""
        per_member = [
            self.task.summarize(
                {k: np.asarray(v)[m] for k, v in metric_sums.items()}, training_window
            )
            for m in range(self.members)
        ]
        return {k: [member[k] for member in per_member] for k in per_member[0]}

    def report(self, state: TrainState, data: Dataset, directory) -> dict:
        del state, data, directory  # members are compared by their metrics
        return {}

    def snapshot(self, state: TrainState, data: Dataset, directory, epoch: int):
        del state, data, directory, epoch  # a population keeps no run directory


@dataclasses.dataclass
class PopulationResult:
    """Per-member outcomes (same order as the inputs) and the population's timings."""

    members: list[dict[str, Any]]
    timing: dict[str, float]
    traces: dict[str, int]


def fit_population(
    task: Task,
    data: Dataset,
    cfg: TrainConfig,
    seeds: list[int],
    learning_rates: list[float],
) -> PopulationResult:
    """Trains ``len(seeds)`` members of ``task`` at once with :func:`fit` (no checkpoints).

    Args:
      task: built with optax chains that end in :func:`member_scale` and have learning
        rate 1 (see the module docstring).
      data: the data set.
      cfg: the ``[train]`` section (``epochs``, ``batch_size``, ``mode``...).
      seeds: each member's seed (init, dropout and batch order).
      learning_rates: each member's learning rate.

    Raises:
      ValueError: if the two lists differ in length or are empty.
    """
    population = PopulationTask(task, tuple(seeds), tuple(learning_rates))
    result = fit(population, data, cfg, seed=seeds[0])
    m = population.members

    def member(split: str, i: int) -> dict[str, float]:
        return {k: v[i] for k, v in result.final[split].items()}

    members = [
        {
            "seed": s,
            "learning_rate": lr,
            "best": result.best[i],
            "val": member("val", i),
            "test": member("test", i),
        }
        for i, (s, lr) in enumerate(zip(seeds, learning_rates, strict=True))
    ]
    compile_s = sum(t["lower_s"] + t["compile_s"] for t in result.timing["compile"].values())
    steps = result.timing["steps_run"]
    timing = {
        "wall_s": result.timing["wall_s"],
        "train_s": result.timing["train_s"],
        "compile_s": compile_s,
        "members": m,
        "member_steps_per_s": m * steps / max(result.timing["train_s"], 1e-9),
    }
    return PopulationResult(members, timing, result.traces)
