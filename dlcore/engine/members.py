"""Per-member model selection for a population: each member stops early on its own.

A population state stacks ``M`` members along a leading axis. Each member follows its own
validation metric with its own :class:`dlcore.engine.selection.BestTracker` (and its own
patience). A member whose patience runs out is *frozen*: the population's step keeps
every leaf of that member as it was (the mask rides in ``state.extra[ACTIVE]``), so its
parameters, optimizer state and best pass are those of a single run that stopped at the
same validation pass. With ``restore_best``, a stopped member gets its best state back at
the end, as a stopped single run does; a member that never stopped keeps its last state.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.engine.selection import BestTracker

ACTIVE = "population/active"  # state.extra key of the [M] bool mask of training members


def select_members(mask_M: Any, a: Any, b: Any) -> Any:
    """Member ``m`` of ``a`` where ``mask_M[m]``, else member ``m`` of ``b`` (stacked trees).

    Example:
      >>> select_members(jnp.array([True, False]), jnp.ones((2, 3)), jnp.zeros((2, 3)))[1]
      Array([0., 0., 0.], dtype=float32)
    """
    mask_M = jnp.asarray(mask_M, bool)

    def pick(x, y):
        return jnp.where(mask_M.reshape(mask_M.shape + (1,) * (jnp.ndim(x) - 1)), x, y)

    return jax.tree.map(pick, a, b)


def set_active(state: Any, active_M: Any) -> Any:
    """``state`` with the mask of the members that still train (the others stay frozen)."""
    return state.replace(extra={**state.extra, ACTIVE: jnp.asarray(active_M, bool)})


def split_active(state: Any) -> tuple[jax.Array | None, Any]:
    """(the active mask or None, ``state`` without it) for the member task's step."""
    if ACTIVE not in state.extra:
        return None, state
    extra = {k: v for k, v in state.extra.items() if k != ACTIVE}
    return state.extra[ACTIVE], state.replace(extra=extra)


@dataclasses.dataclass
class MemberTrackers:
    """One :class:`BestTracker` per member, freezing members whose patience ran out.

    Attributes:
      trackers: each member's tracker (its own patience; None never stops).
      best_state: a stacked copy holding each member's best state so far (kept only when
        some member has a patience, as a single run keeps one only then).
    """

    trackers: list[BestTracker]
    best_state: Any = None
    stopped_at: dict[int, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def create(cls, metric: str, maximize: bool, patiences: Sequence[int | None]):
        return cls([BestTracker(metric, maximize, p) for p in patiences])

    @property
    def stopped(self) -> np.ndarray:
        return np.array([t.should_stop for t in self.trackers])

    @property
    def should_stop(self) -> bool:
        """The population stops when every member has."""
        return bool(self.stopped.all())

    @property
    def best(self) -> list[dict[str, Any] | None]:
        return [t.best for t in self.trackers]

    def observe(self, state: Any, values: Sequence[float], step: int) -> Any:
        """Records one validation pass of every still-training member; returns the state
        with the newly stopped members frozen."""
        was_stopped = self.stopped
        improved = np.zeros(len(self.trackers), bool)
        for m, tracker in enumerate(self.trackers):
            if not was_stopped[m]:  # a stopped single run sees no more passes
                improved[m] = tracker.observe(float(values[m]), step)
        if any(t.patience is not None for t in self.trackers) and improved.any():
            # Copies survive the donation of ``state`` to the next step.
            fresh = jax.tree.map(jnp.copy, state)
            self.best_state = (
                fresh
                if self.best_state is None
                else (select_members(improved, fresh, self.best_state))
            )
        stopped = self.stopped
        for m in np.flatnonzero(stopped & ~was_stopped):
            self.stopped_at[int(m)] = step
        return set_active(state, ~stopped) if stopped.any() else state

    def finish(self, state: Any, restore_best: bool) -> Any:
        """The final state: stopped members restored to their best pass if asked."""
        stopped = self.stopped
        if not restore_best or not stopped.any() or self.best_state is None:
            return state
        return select_members(stopped, self.best_state, state)

    def early_stopping(self) -> list[dict[str, int] | None]:
        """Per member: ``{"early_stopped_at", "restored_step"}`` if it stopped, else None."""
        return [
            {"early_stopped_at": self.stopped_at[m], "restored_step": t.best["step"]}
            if t.should_stop
            else None
            for m, t in enumerate(self.trackers)
        ]
