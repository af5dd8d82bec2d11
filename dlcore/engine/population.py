"""Population training: many runs that differ in seeds and hyper-parameters, as one program.

Every member is an independent training run (its own initialization, dropout keys, batch
order and hyper-parameters), but all members are stacked along a leading axis and trained
as one task by the one loop: :class:`PopulationTask` wraps any task with ``vmap``. Small
models leave most of a CPU or GPU idle; a population fills it, so M members cost far less
than M sequential trials.

A hyper-parameter that keeps every shape (a dropout rate, a momentum, a penalty strength,
a schedule's decay...) becomes a per-member value by building the member task *inside*
the vmapped function from values that are traced: ``build_member(values)`` receives a
``{name: scalar}`` dict whose scalars are the member's (a ``vmap`` tracer), so the task's
modules and optax chains compute with them like with any array. The learning rate can
also come in as a factor kept in the optimizer state (:func:`member_scale`), by building
each chain with learning rate 1: the update rule is linear in the rate.

Members stop early on their own (:mod:`dlcore.engine.members`): the loop freezes a member
whose patience ran out through a mask in ``state.extra``, which :meth:`train_step` reads.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlcore.data.dataset import Dataset
from dlcore.data.iterator import StackedOrder
from dlcore.engine.loop import fit
from dlcore.engine.members import select_members, set_active, split_active
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


@dataclasses.dataclass(frozen=True, eq=False)
class PopulationTask:
    """``task`` trained as ``len(seeds)`` stacked members (see the module docstring).

    The state carries a leading member axis; batches carry one too (each member reads its
    own batch order); evaluation batches are shared. Metrics come back as ``[M]`` vectors.

    Attributes:
      task: the member task with concrete hyper-parameters (its batch order, metrics and
        summaries are every member's).
      seeds: each member's seed (init, dropout and batch order); the loop's own seed is
        not used.
      learning_rates: each member's learning rate when ``task``'s chains end in
        :func:`member_scale` and have learning rate 1; None otherwise.
      hyper: ``{name: one value per member}`` handed to ``build_member``.
      build_member: ``{name: traced scalar} -> Task``, the member task built from its
        values inside the vmapped functions; None trains ``task`` itself.

    Example::

        population = PopulationTask(task, (0, 1), hyper={"dropout": (0.1, 0.3)},
                                    build_member=lambda h: make_task(dropout=h["dropout"]))
    """

    task: Task
    seeds: tuple[int, ...]
    learning_rates: tuple[float, ...] | None = None
    hyper: dict[str, tuple] = dataclasses.field(default_factory=dict)
    build_member: Callable[[dict[str, jax.Array]], Task] | None = None

    def __post_init__(self):
        sizes = {len(v) for v in self.hyper.values()}
        if self.learning_rates is not None:
            sizes.add(len(self.learning_rates))
        if not self.seeds or sizes - {len(self.seeds)}:
            raise ValueError(
                f"need one learning rate and hyper-parameter value per seed; got "
                f"{len(self.seeds)} seeds and {sorted(sizes)} values"
            )

    def _values_M(self) -> dict[str, jax.Array]:
        # Constants of the compiled program: int32 for integers, float32 otherwise.
        return {k: jnp.asarray(np.asarray(v)) for k, v in self.hyper.items()}

    def _member(self, values: dict[str, jax.Array]) -> Task:
        return self.task if self.build_member is None else self.build_member(values)

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
        state = jax.vmap(lambda k, h: self._member(h).init(k, batch))(keys, self._values_M())
        if self.learning_rates is not None:
            rates = jnp.asarray(self.learning_rates, jnp.float32)
            state = state.replace(opt_state=set_member_factors(state.opt_state, rates))
        return set_active(state, jnp.ones(self.members, bool))

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        """One step of every member; a frozen member (see ``ACTIVE``) keeps its state."""
        active, inner = split_active(state)
        new, metrics = jax.vmap(lambda s, b, h: self._member(h).train_step(s, b))(
            inner, batch, self._values_M()
        )
        if active is None:
            return new, metrics
        # The step counter moves for all: the loop reads one step for the population.
        kept = select_members(active, new, inner).replace(step=new.step)
        return set_active(kept, active), metrics

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        _, inner = split_active(state)
        return jax.vmap(lambda s, b, h: self._member(h).eval_step(s, b), in_axes=(0, None, 0))(
            inner, batch, self._values_M()
        )

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
    state: TrainState | None = None  # the final stacked state


def fit_population(
    task: Task,
    data: Dataset,
    cfg: TrainConfig,
    seeds: list[int],
    learning_rates: list[float] | None = None,
    *,
    hyper: dict[str, tuple] | None = None,
    build_member: Callable[[dict[str, jax.Array]], Task] | None = None,
    member_patience: list[int | None] | None = None,
    on_validation: Callable[[TrainState, dict], TrainState] | None = None,
) -> PopulationResult:
    """Trains ``len(seeds)`` members of ``task`` at once with :func:`fit` (no checkpoints).

    Args:
      task: the member task; with ``learning_rates``, built with optax chains that end in
        :func:`member_scale` and have learning rate 1 (see the module docstring).
      data: the data set.
      cfg: the ``[train]`` section (``epochs``, ``batch_size``, ``mode``...).
      seeds: each member's seed (init, dropout and batch order).
      learning_rates: each member's learning rate (None: the chains hold it).
      hyper: ``{name: one value per member}`` for ``build_member``.
      build_member: builds a member task from its (traced) values.
      member_patience: each member's early-stopping patience (None: ``cfg``'s).
      on_validation: the loop's hook after each validation pass (per-member plateaus).

    Raises:
      ValueError: if the lists differ in length or are empty.
    """
    population = PopulationTask(
        task,
        tuple(seeds),
        None if learning_rates is None else tuple(learning_rates),
        dict(hyper or {}),
        build_member,
    )
    result = fit(
        population,
        data,
        cfg,
        seed=seeds[0],
        on_validation=on_validation,
        member_patience=member_patience,
    )
    m = population.members
    stops = result.early_stopping or [None] * m

    def member(split: str, i: int) -> dict[str, float]:
        return {k: v[i] for k, v in result.final[split].items()}

    members = [
        {
            "seed": s,
            **({} if learning_rates is None else {"learning_rate": learning_rates[i]}),
            "hyper": {k: v[i] for k, v in population.hyper.items()},
            "best": result.best[i],
            "val": member("val", i),
            "test": member("test", i),
            "early_stopping": stops[i],
        }
        for i, s in enumerate(seeds)
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
    return PopulationResult(members, timing, result.traces, result.state)
