"""Two accumulators optax lacks, each PyTorch's exact rule: dampened momentum and Adagrad
with ``eps`` outside the square root.

Everything is elementwise; ``u`` is the incoming update and ``t`` counts updates from 1.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dlcore.traced import is_traced


class DampenedTraceState(NamedTuple):
    """The momentum buffer and the number of updates it has seen (int32 scalar)."""

    count: jax.Array
    trace: optax.Params


def dampened_trace(decay: float, dampening: float) -> optax.GradientTransformation:
    """Momentum whose new contributions are scaled by ``1 - dampening`` (PyTorch's SGD):

    .. math::

        v_1 = u_1, \\qquad v_t = \\mu\\, v_{t-1} + (1 - d)\\, u_t \\quad (t > 1),

    and the output is :math:`v_t`. The first update is not dampened, as in
    ``torch.optim.SGD`` (its buffer starts as a copy of the first gradient); with
    ``dampening = 0`` this is ``optax.trace(decay)``.

    Args:
      decay: the momentum :math:`\\mu` in ``[0, 1)``.
      dampening: :math:`d` in ``[0, 1)``.

    Raises:
      ValueError: for a decay or dampening outside ``[0, 1)``.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = dampened_trace(0.5, 0.5)
      >>> u, state = tx.update(jnp.ones(1), tx.init(jnp.zeros(1)))  # v = 1
      >>> float(tx.update(jnp.ones(1), state)[0][0])  # v = 0.5 * 1 + 0.5 * 1
      1.0
    """
    if not is_traced(decay) and not 0.0 <= decay < 1.0:  # traced ones were checked as config
        raise ValueError(f"momentum must be in [0, 1); got {decay}")
    if not is_traced(dampening) and not 0.0 <= dampening < 1.0:
        raise ValueError(f"dampening must be in [0, 1); got {dampening}")

    def init_fn(params):
        return DampenedTraceState(jnp.zeros([], jnp.int32), optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        first = state.count == 0
        trace = jax.tree.map(
            lambda u, v: jnp.where(first, u, decay * v + (1.0 - dampening) * u),
            updates,
            state.trace,
        )
        return trace, DampenedTraceState(optax.safe_increment(state.count), trace)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_rss_eps_outside(
    initial_accumulator_value: float = 0.0, eps: float = 1e-10
) -> optax.GradientTransformation:
    """Adagrad's scaling with ``eps`` added to the root (``torch.optim.Adagrad``):

    .. math::

        r_t = r_{t-1} + u_t^2, \\quad r_0 = r_\\text{init}, \\qquad
        \\text{out}_t = \\frac{u_t}{\\sqrt{r_t} + \\epsilon}.

    ``optax.scale_by_rss`` puts ``eps`` under the root instead, :math:`u / \\sqrt{r + \\epsilon}`.
    The state is ``optax.ScaleByRssState``, the same as optax's, so both placements
    checkpoint alike.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = scale_by_rss_eps_outside(0.0, 1.0)
      >>> float(tx.update(jnp.full(1, 3.0), tx.init(jnp.zeros(1)))[0][0])  # 3 / (3 + 1)
      0.75
    """
    if initial_accumulator_value < 0.0:
        raise ValueError(f"initial_accumulator_value must be >= 0; got {initial_accumulator_value}")

    def init_fn(params):
        return optax.ScaleByRssState(optax.tree.full_like(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params
        sums = jax.tree.map(lambda u, r: r + u * u, updates, state.sum_of_squares)
        out = jax.tree.map(lambda u, r: u / (jnp.sqrt(r) + eps), updates, sums)
        return out, optax.ScaleByRssState(sums)

    return optax.GradientTransformation(init_fn, update_fn)
