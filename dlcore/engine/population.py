"""Population training: many seeds and learning rates at once, as one compiled program.

Every member is an independent training run (its own initialization, dropout keys, batch
order and learning rate), but all members are stacked along a leading axis and trained by a
single ``vmap``-ed epoch scan. Small models leave most of a CPU or GPU idle; a population
fills it, so M members cost far less than M sequential trials.

The learning rate is made a per-member value by building the optax chain with learning
rate 1 and appending :func:`member_scale`, whose state holds the member's rate. For
SGD, momentum, Nesterov, Adagrad, RMSProp, Adam and AdamW the update is linear in the
learning rate, so each member follows the same rule as a trial run with that rate.
"""

import dataclasses
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlcore.config import TrainConfig
from dlcore.data import BatchOrder, Dataset
from dlcore.engine.compiled import AheadOfTime, CompiledTask, eval_chunks
from dlcore.engine.selection import BestTracker
from dlcore.tasks.base import Task, means


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
    """Trains ``len(seeds)`` members at once (epoch-scan mode, no checkpoints).

    Args:
      task: built with an optax chain that ends in :func:`member_scale` and has learning
        rate 1 (see the module docstring).
      data: the data set.
      cfg: the ``[train]`` section (``epochs``, ``batch_size``, ``eval_every``...).
      seeds: each member's seed (init, dropout and batch order).
      learning_rates: each member's learning rate.

    Raises:
      ValueError: if the two lists differ in length or are empty.
    """
    if len(seeds) != len(learning_rates) or not seeds:
        raise ValueError(
            f"need one learning rate per seed; got {len(seeds)} seeds and "
            f"{len(learning_rates)} learning rates"
        )
    t_begin = time.perf_counter()
    metric = cfg.best_metric or task.default_metric
    trackers = [BestTracker(metric, task.metric_modes[metric] == "max") for _ in seeds]
    batch_order = getattr(task, "batch_order", "shuffled")
    orders = [BatchOrder(len(data.train), cfg.batch_size, s, order=batch_order) for s in seeds]
    spe = orders[0].steps_per_epoch
    compiled = CompiledTask(task)  # for its epoch body and trace counter
    example = {"x": data.train.x[: cfg.batch_size], "y": data.train.y[: cfg.batch_size]}
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    state = jax.vmap(lambda k: task.init(k, example))(keys)
    state = state.replace(
        opt_state=set_member_factors(state.opt_state, jnp.asarray(learning_rates, jnp.float32))
    )
    epoch = AheadOfTime(
        jax.vmap(compiled._epoch, in_axes=(0, None, None, 0)),
        "population_epoch",
        compiled.traces,
        donate_argnums=0,
    )
    evaluate = AheadOfTime(
        jax.vmap(task.eval_step, in_axes=(0, None)), "population_eval", compiled.traces
    )
    x_dev, y_dev = jax.device_put(data.train.x), jax.device_put(data.train.y)
    chunk = min(cfg.eval_batch_size, max(len(data.val), len(data.test)))
    val_chunks = eval_chunks(data.val.x, data.val.y, chunk)

    def member_means(chunks) -> list[dict[str, float]]:
        sums = jax.device_get([evaluate(state, c) for c in chunks])
        totals = {k: np.sum([s[k] for s in sums], axis=0, dtype=np.float64) for k in sums[0]}
        return [means({k: v[m] for k, v in totals.items()}) for m in range(len(seeds))]

    train_s = 0.0
    for e in range(cfg.epochs):
        rows = jnp.asarray(np.stack([o.indices(e) for o in orders]), jnp.int32)
        t0 = time.perf_counter()
        state, _ = epoch(state, x_dev, y_dev, rows)
        jax.block_until_ready(state)
        train_s += time.perf_counter() - t0
        if (e + 1) % cfg.eval_every == 0 or e + 1 == cfg.epochs:
            for tracker, val in zip(trackers, member_means(val_chunks), strict=True):
                tracker.observe(val[metric], (e + 1) * spe)
    final_val = member_means(val_chunks)
    final_test = member_means(eval_chunks(data.test.x, data.test.y, chunk))
    train_s -= epoch.lower_s + epoch.compile_s
    members = [
        {"seed": s, "learning_rate": lr, "best": t.best, "val": v, "test": te}
        for s, lr, t, v, te in zip(
            seeds, learning_rates, trackers, final_val, final_test, strict=True
        )
    ]
    timing = {
        "wall_s": time.perf_counter() - t_begin,
        "train_s": train_s,
        "compile_s": epoch.lower_s + epoch.compile_s + evaluate.lower_s + evaluate.compile_s,
        "members": len(seeds),
        "member_steps_per_s": len(seeds) * cfg.epochs * spe / max(train_s, 1e-9),
    }
    return PopulationResult(members, timing, dict(compiled.traces))
