"""Plain Adam and SGD on pytrees, and the hand-written train step built from a loss."""

from collections.abc import Callable

import jax
import jax.numpy as jnp


def adam_init(params):
    """Adam state ``(t, m, s)`` with zero moments (distinct buffers, so it can be donated)."""
    return (
        jnp.zeros((), jnp.int32),
        jax.tree.map(jnp.zeros_like, params),
        jax.tree.map(jnp.zeros_like, params),
    )


def adam_update(params, grads, state, lr: float, b1=0.9, b2=0.999, eps=1e-8):
    """p <- p - lr m_hat / (sqrt(s_hat) + eps); returns ``(params, state)``."""
    t, m, s = state
    t = t + 1
    m = jax.tree.map(lambda m_, g: b1 * m_ + (1 - b1) * g, m, grads)
    s = jax.tree.map(lambda s_, g: b2 * s_ + (1 - b2) * g * g, s, grads)
    tf = t.astype(jnp.float32)
    c1, c2 = 1 - b1**tf, 1 - b2**tf

    def step(p, m_, s_):
        return p - (lr * (m_ / c1) / (jnp.sqrt(s_ / c2) + eps)).astype(p.dtype)

    return jax.tree.map(step, params, m, s), (t, m, s)


def make_train_step(loss_fn: Callable, lr: float = 1e-3) -> Callable:
    """``step((params, opt_state), *batch) -> ((params, opt_state), loss)``, not jitted here.

    The carry comes first so the caller can donate it (``donate_argnums=0``).

    Example:
      >>> step = jax.jit(make_train_step(lambda p, x: jnp.sum((p["w"] * x) ** 2)))
      >>> p = {"w": jnp.ones(3)}
      >>> (p, s), loss = step((p, adam_init(p)), jnp.ones(3))
    """

    def step(carry, *batch):
        params, opt_state = carry
        value, grads = jax.value_and_grad(loss_fn)(params, *batch)
        return adam_update(params, grads, opt_state, lr), value

    return step
