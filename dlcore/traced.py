"""Hyper-parameters that may be traced values (a population member's, under ``vmap``).

Population training (:mod:`dlcore.engine.population`) builds each member's modules and
optax chains from hyper-parameters that are tracers, so code that decides something in
Python from a hyper-parameter must not look at a traced one. A zero that switches a
feature off (a dropout rate, a weight decay, a penalty strength, a momentum) is the usual
case; the general path gives the same numbers at zero (``x * 1``, ``g + 0 * p``), so a
traced value takes it, and a concrete zero keeps the shortcut.
"""

from typing import Any

import jax


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (its number is not known while tracing).

    Example:
      >>> is_traced(0.5), jax.vmap(lambda x: is_traced(x) * x)(jax.numpy.ones(1)).tolist()
      (False, [1.0])
    """
    return isinstance(value, jax.core.Tracer)


def statically_zero(value: Any) -> bool:
    """True for a concrete value equal to 0; False for anything traced.

    Example:
      >>> statically_zero(0.0), statically_zero(0.1)
      (True, False)
    """
    return not is_traced(value) and value == 0
