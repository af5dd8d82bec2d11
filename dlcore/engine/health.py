"""Is training still finite? The compiled step's health report, and the policy for a bad step.

Every optax chain a task builds through its ``BuildContext`` starts with
:func:`track_gradients`, which keeps the global norm of the step's gradients and whether
they were finite in its (tiny) state. The compiled step then reports, for every step,

    finite    = loss sums finite  ∧  gradients finite  ∧  new parameters finite
    grad_norm = max over the task's chains of ||g||_2   (NaN when no chain is tracked)

as two scalars that stay on the device with the step's metrics, so checking costs no host
sync per step: the loop reads them when it logs, saves or evaluates anyway. With
``on_nonfinite = "skip"`` a bad step keeps the previous state (only the step counter moves)
and contributes no metrics; with ``"halt"`` the loop stops at the next log point.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dlcore.engine.state import TrainState

NONFINITE_POLICIES = ("halt", "skip")


class GradStats(NamedTuple):
    """The last update's gradient norm and finiteness (state of :func:`track_gradients`)."""

    norm: jax.Array  # float32 scalar
    finite: jax.Array  # bool scalar


def track_gradients() -> optax.GradientTransformation:
    """Passes updates through unchanged and records ||g||_2 and isfinite(g) in its state.

    Example:
      >>> chain = optax.chain(track_gradients(), optax.adam(1e-3))
    """

    def init(params):
        del params
        return GradStats(jnp.zeros((), jnp.float32), jnp.ones((), bool))

    def update(updates, state, params=None):
        del state, params
        norm = optax.tree.norm(updates).astype(jnp.float32)
        return updates, GradStats(norm, jnp.isfinite(norm))

    return optax.GradientTransformation(init, update)


def _grad_stats(opt_state: Any) -> list[GradStats]:
    leaves = jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, GradStats))
    return [s for s in leaves if isinstance(s, GradStats)]


def _all_finite(tree: Any) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    if not leaves:
        return jnp.ones((), bool)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def guard_step(train_step, policy: str):
    """``train_step`` with a health report: ``(state, batch) -> (state, metrics, health)``.

    ``health`` is ``{"finite": bool, "grad_norm": float32}``. Under ``policy = "skip"`` a
    non-finite step returns the input state (step + 1) and zero metric sums.
    """

    def guarded(state: TrainState, batch):
        new_state, metrics = train_step(state, batch)
        stats = _grad_stats(new_state.opt_state)
        finite = _all_finite(metrics) & _all_finite(new_state.params)
        grad_norm = jnp.full((), jnp.nan, jnp.float32)
        if stats:
            finite = finite & jnp.all(jnp.stack([s.finite for s in stats]))
            grad_norm = jnp.max(jnp.stack([s.norm for s in stats]))
        if policy == "skip":
            kept = state.replace(step=new_state.step)
            new_state = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new_state, kept)
            metrics = jax.tree.map(lambda m: jnp.where(finite, m, jnp.zeros_like(m)), metrics)
        return new_state, metrics, {"finite": finite, "grad_norm": grad_norm}

    return guarded


class HealthWatch:
    """The loop's side of the health report: steps not yet checked, skips, the verdict.

    ``check`` pulls the pending reports to the host (the loop calls it only where it syncs
    anyway: log points, saves, validation) and returns a one-line reason to halt, or None.

    Attributes:
      policy: ``"halt"`` or ``"skip"``.
      max_skips: skipped steps after which a ``"skip"`` run halts too.
      skipped: steps skipped so far (carried in checkpoints).
      first_bad: ``{"step", "loss", "grad_norm"}`` of the first non-finite step, or None.
    """

    def __init__(self, policy: str, max_skips: int, active: bool = True, skipped: int = 0):
        self.policy, self.max_skips, self.active = policy, max_skips, active
        self.skipped = skipped
        self.first_bad: dict[str, Any] | None = None
        self._unchecked: list[tuple[int, Any, Any]] = []

    def add(self, step: int, health: Any, metrics: Any) -> None:
        """Records the report of update number ``step`` (device arrays, not fetched)."""
        if self.active:
            self._unchecked.append((step, health, metrics))

    def check(self) -> str | None:
        """None while training may go on, else why it must halt (one line)."""
        reports, self._unchecked = jax.device_get(self._unchecked), []
        for step, health, metrics in reports:
            if bool(health["finite"]):
                continue
            if self.first_bad is None:
                count = float(metrics.get("count", 1.0)) or 1.0
                loss = float(metrics["loss"]) / count if "loss" in metrics else float("nan")
                self.first_bad = {
                    "step": step,
                    "loss": loss,
                    "grad_norm": float(health["grad_norm"]),
                }
            if self.policy == "skip":
                self.skipped += 1
                if self.skipped <= self.max_skips:
                    continue
        return self.reason()

    def reason(self) -> str | None:
        bad = self.first_bad
        if bad is None or (self.policy == "skip" and self.skipped <= self.max_skips):
            return None
        what = f"loss {bad['loss']:.4g}, gradient norm {bad['grad_norm']:.4g}"
        if self.policy == "skip":
            return (
                f"training diverged: {self.skipped} non-finite steps skipped, more than "
                f"train.max_skips = {self.max_skips} (the first at step {bad['step']}: {what})"
            )
        return f"training diverged at step {bad['step']}: {what}"
