"""Divide the learning rate by k when a validation metric stops improving.

This cannot be a schedule ``t -> rate``: it depends on validation results. It is an optax
transform that multiplies the updates by a factor held in its state (placed next to the
learning-rate scaling in every recipe), plus :func:`plateau_observe`, a pure function the
training loop calls after each validation pass to update that factor.

With ``s = +1`` for ``mode = "max"`` and ``s = -1`` for ``"min"``, each observed value ``v``
is scored ``s * v`` so that larger is always better, whatever the sign of the metric:

    improved  =  s * v > best + min_delta
    best      <- s * v                      if improved
    bad       <- 0 if improved else bad + 1
    scale     <- scale / factor,  bad <- 0  if bad == patience

The first observation always improves on ``best = -inf``; NaN never improves.
"""

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dlcore.traced import is_traced


class PlateauState(NamedTuple):
    """The plateau factor and its bookkeeping; float32/int32 scalars.

    The hyper-parameters ride in the state so that :func:`plateau_observe` needs nothing
    but the optimizer state; they are constants for a run.
    """

    scale: jax.Array  # current multiplier of the learning rate, starts at 1
    best: jax.Array  # best score s * v so far
    num_bad: jax.Array  # consecutive non-improving observations
    factor: jax.Array
    patience: jax.Array
    min_delta: jax.Array
    sign: jax.Array  # +1 for mode "max", -1 for "min"


def scale_by_plateau(
    factor: float, patience: int, mode: Literal["max", "min"], min_delta: float = 0.0
) -> optax.GradientTransformation:
    """Multiplies updates by the plateau factor in its state (1 until a plateau is seen).

    Args:
      factor: divide the factor by this (> 1) after ``patience`` bad observations.
      patience: number of consecutive non-improving observations before dividing.
      mode: ``"max"`` if larger metric values are better, ``"min"`` if smaller are.
      min_delta: an observation must beat the best by more than this to count.

    Raises:
      ValueError: for a factor <= 1, patience < 1, negative min_delta or an unknown mode.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> opt = optax.chain(optax.sgd(0.1), scale_by_plateau(10.0, 1, "min"))
      >>> state = opt.init({"w": jnp.ones(2)})
      >>> state = plateau_observe(plateau_observe(state, 1.0), 1.5)  # worse: divide by 10
      >>> round(float(opt.update({"w": jnp.ones(2)}, state)[0]["w"][0]), 6)
      -0.01
    """
    if mode not in ("max", "min"):
        raise ValueError(f"plateau mode must be 'max' or 'min'; got {mode!r}")
    # A population member's traced values were checked as config.
    if not is_traced(factor) and not factor > 1.0:
        raise ValueError(f"plateau factor must be > 1 (the rate is divided by it); got {factor}")
    if not is_traced(patience) and patience < 1:
        raise ValueError(f"plateau patience must be >= 1; got {patience}")
    if not is_traced(min_delta) and min_delta < 0.0:
        raise ValueError(f"plateau min_delta must be >= 0; got {min_delta}")

    def init_fn(params):
        del params
        return PlateauState(
            scale=jnp.ones((), jnp.float32),
            best=jnp.full((), -jnp.inf, jnp.float32),
            num_bad=jnp.zeros((), jnp.int32),
            factor=jnp.asarray(factor, jnp.float32),
            patience=jnp.asarray(patience, jnp.int32),
            min_delta=jnp.asarray(min_delta, jnp.float32),
            sign=jnp.asarray(1.0 if mode == "max" else -1.0, jnp.float32),
        )

    def update_fn(updates, state, params=None):
        del params
        updates = jax.tree.map(lambda u: jnp.asarray(state.scale, u.dtype) * u, updates)
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def _is_plateau(node: Any) -> bool:
    return isinstance(node, PlateauState)


def _observe_one(state: PlateauState, value: jax.Array) -> PlateauState:
    score = state.sign * value
    improved = score > state.best + state.min_delta
    num_bad = jnp.where(improved, 0, state.num_bad + 1)
    cut = num_bad >= state.patience
    return state._replace(
        scale=jnp.where(cut, state.scale / state.factor, state.scale),
        best=jnp.where(improved, score, state.best),
        num_bad=jnp.where(cut, 0, num_bad).astype(jnp.int32),
    )


def plateau_observe(opt_state: Any, value: jax.Array | float) -> Any:
    """Reports one validation value to every plateau factor inside an optimizer state.

    For the training loop: after each validation pass, with ``value`` the validation
    metric named by the plateau section (``cfg.optimizer.schedule`` found with
    :func:`dlcore.optim.find_plateau`; its ``metric``, else the run's best metric), do::

        state = state.replace(opt_state=plateau_observe(state.opt_state, value))

    It is pure and jit-able (``jax.jit(plateau_observe)``), finds the
    :class:`PlateauState` wherever it sits in the nested chain state (inside
    ``optax.chain``, ``multi_transform`` for frozen parameters, ...), and returns any
    state without one unchanged, so it may be called for every optimizer. The new state
    has the same tree structure, shapes and dtypes, so checkpoints and donation work.

    Args:
      opt_state: the optax state of a chain built by :func:`dlcore.optim.build_optimizer`.
      value: the scalar validation metric (a Python float or a 0-d array).

    Returns:
      The optimizer state with each plateau factor updated.
    """
    value = jnp.asarray(value, jnp.float32)
    if value.ndim != 0:
        raise ValueError(f"plateau_observe expects a scalar metric; got shape {value.shape}")
    return jax.tree.map(
        lambda node: _observe_one(node, value) if _is_plateau(node) else node,
        opt_state,
        is_leaf=_is_plateau,
    )


def plateau_scale(opt_state: Any) -> float:
    """The current plateau factor of an optimizer state (1.0 if it has none), for logs."""
    found = [n for n in jax.tree.leaves(opt_state, is_leaf=_is_plateau) if _is_plateau(n)]
    return float(found[0].scale) if found else 1.0
