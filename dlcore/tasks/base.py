"""What every model-based task shares: the initial state of a Flax model and its chain."""

import jax
import jax.numpy as jnp

from dlcore.engine.state import TrainState


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


def apply_model(module, params, model_state: dict, x, dropout_key: jax.Array | None):
    """``module(x)`` as a task's step runs it: eval mode when ``dropout_key`` is None, else
    training mode with dropout drawn from ``dropout_key`` and the non-trainable collections
    in ``model_state`` (batch statistics) updated.

    Returns:
      ``(output, model_state)``, the latter updated in training mode when it is non-empty.
    """
    variables = {"params": params, **model_state}
    if dropout_key is None:
        return module.apply(variables, x, train=False), model_state
    rngs = {"dropout": dropout_key}
    if not model_state:
        return module.apply(variables, x, train=True, rngs=rngs), model_state
    out, updated = module.apply(variables, x, train=True, rngs=rngs, mutable=list(model_state))
    return out, dict(updated)


def apply_role(module, role: str, params, model_state: dict, x, dropout_key: jax.Array | None):
    """:func:`apply_model` for one of a task's several models, whose non-trainable
    collections sit in ``model_state[role]`` (only roles that have any get an entry).

    Returns:
      ``(output, model_state)``: the whole model state, with ``role``'s entry updated in
      training mode.
    """
    out, updated = apply_model(module, params, model_state.get(role, {}), x, dropout_key)
    if dropout_key is None or role not in model_state:
        return out, model_state
    return out, {**model_state, role: updated}
