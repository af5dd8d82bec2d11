"""Max-norm weight constraints: after each update, every unit's incoming weights have norm <= c.

Srebro et al. (2005) and Hinton et al.'s dropout paper (Srivastava et al. 2014, section 5.1)
bound the L2 norm of each hidden unit's incoming weight vector by projection:

.. math::  w_j \\leftarrow w_j \\cdot \\min\\left(1, \\frac{c}{\\lVert w_j \\rVert_2}\\right)

Axis convention (Flax layouts): a unit is the last axis of a kernel, its incoming vector
everything else. A Dense kernel ``[in, out]`` gets one norm per output unit, over ``in``; a
Conv kernel ``[H, W, I, O]`` (HWIO) one per output channel, over ``H, W, I`` (Keras'
``MaxNorm(axis=0)`` / ``axis=[0, 1, 2]``). Only weight leaves of rank >= 2 are constrained
(:func:`dlcore.regularizers.weight_mask`: no biases, scales or norm layers); a rank-1 weight
such as a PReLU slope has no incoming vector and is left alone.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from dlcore.regularizers import DEFAULT_EXCLUDE, weight_mask
from dlcore.traced import is_traced


def max_norm_project(w: jax.Array, max_norm: float) -> jax.Array:
    """Scales each unit (last axis) of ``w`` whose incoming norm exceeds ``max_norm`` back
    onto the sphere of radius ``max_norm``; units within the bound are returned unchanged.

    Args:
      w: a kernel ``[..., fan_in_dims, units]`` of rank >= 2.
      max_norm: c > 0.

    Returns:
      ``w`` with column ``j`` multiplied by ``min(1, c / ||w_j||)``.

    Example:
      >>> w = jnp.array([[3.0, 0.3], [4.0, 0.4]])  # unit norms 5 and 0.5
      >>> max_norm_project(w, 1.0).tolist()
      [[0.6000000238418579, 0.30000001192092896], [0.800000011920929, 0.4000000059604645]]
    """
    over_1xU, scale_1xU = _unit_scale(w, max_norm)
    return jnp.where(over_1xU, w * scale_1xU, w)


def _unit_scale(w: jax.Array, max_norm: float) -> tuple[jax.Array, jax.Array]:
    """(units over the bound, their scale c / norm), both ``[1, ..., 1, units]``."""
    axes = tuple(range(w.ndim - 1))
    norm_1xU = jnp.sqrt(jnp.sum(jnp.square(w), axis=axes, keepdims=True))
    over_1xU = norm_1xU > max_norm
    # the inner where() keeps the division finite for units that are not scaled (0/0)
    return over_1xU, (max_norm / jnp.where(over_1xU, norm_1xU, 1.0)).astype(w.dtype)


def max_norm(
    c: float, exclude: Sequence[str] = DEFAULT_EXCLUDE
) -> optax.GradientTransformationExtraArgs:
    """An optax transform whose updates ``u`` make ``p + u`` satisfy the max-norm bound.

    .. math::  u' = \\Pi_c(p + u) - p

    with :math:`\\Pi_c` = :func:`max_norm_project` on every weight leaf of rank >= 2
    (other leaves, and units with ``||p_j + u_j|| <= c``, keep ``u`` exactly). Put it last
    in a chain, after the learning-rate scaling, so that it sees the final step. Needs
    ``params`` in ``update``.

    Args:
      c: the bound on each unit's incoming L2 norm (> 0); may be traced (populations).
      exclude: path names that are not constrained (as for the weight penalties).

    Raises:
      ValueError: for ``c <= 0``, or when ``update`` is called without ``params``.

    Example:
      >>> tx = max_norm(1.0)
      >>> p = {"kernel": jnp.zeros((2, 1)), "bias": jnp.zeros(1)}
      >>> u = {"kernel": jnp.array([[3.0], [4.0]]), "bias": jnp.array([9.0])}
      >>> new, _ = tx.update(u, tx.init(p), p)
      >>> new["kernel"].ravel().tolist(), new["bias"].tolist()
      ([0.6000000238418579, 0.800000011920929], [9.0])
    """
    if not is_traced(c) and not c > 0:  # a traced c (a population member's) was checked
        raise ValueError(f"max_norm must be > 0; got {c!r}")
    exclude = tuple(exclude)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("max_norm needs the parameters: call update(updates, state, params)")

        def constrain(u, p, is_weight):
            if not is_weight or p.ndim < 2:
                return u
            over_1xU, scale_1xU = _unit_scale(p + u, c)
            # units within the bound keep u itself: (p + u) - p would round
            return jnp.where(over_1xU, (p + u) * scale_1xU - p, u)

        mask = weight_mask(params, exclude)
        return jax.tree.map(constrain, updates, params, mask), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
