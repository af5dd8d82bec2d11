"""SGD, momentum and Adam updates on dicts of NumPy arrays, as written in the lectures.

    SGD:       p <- p - lr g
    momentum:  v <- mu v - lr g,   p <- p + v
    Adam:      m <- b1 m + (1 - b1) g,   s <- b2 s + (1 - b2) g^2,
               p <- p - lr m_hat / (sqrt(s_hat) + eps),
               m_hat = m / (1 - b1^t),   s_hat = s / (1 - b2^t)
The functions are pure: they return new parameters and state and modify nothing in place.
"""

import numpy as np


def sgd(params: dict, grads: dict, lr: float) -> dict:
    """One SGD step.

    Example:
      >>> sgd({"w": np.array([1.0])}, {"w": np.array([2.0])}, lr=0.5)["w"]
      array([0.])
    """
    return {k: p - lr * grads[k] for k, p in params.items()}


def momentum_init(params: dict) -> dict:
    """Zero velocities."""
    return {k: np.zeros_like(p) for k, p in params.items()}


def momentum(params: dict, grads: dict, velocity: dict, lr: float, mu: float = 0.9):
    """One heavy-ball momentum step: ``(new_params, new_velocity)``."""
    velocity = {k: mu * velocity[k] - lr * grads[k] for k in params}
    return {k: p + velocity[k] for k, p in params.items()}, velocity


def adam_init(params: dict):
    """Adam state ``(t, m, s)``: step count and zero first/second moments."""
    zeros = {k: np.zeros_like(p) for k, p in params.items()}
    return 0, zeros, dict(zeros)


def adam(params: dict, grads: dict, state, lr: float, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam step: ``(new_params, new_state)``."""
    t, m, s = state
    t += 1
    m = {k: b1 * m[k] + (1 - b1) * grads[k] for k in params}
    s = {k: b2 * s[k] + (1 - b2) * grads[k] * grads[k] for k in params}
    c1, c2 = 1 - b1**t, 1 - b2**t
    new = {}
    for k, p in params.items():
        step = lr * (m[k] / c1) / (np.sqrt(s[k] / c2) + eps)
        new[k] = p - step.astype(p.dtype)
    return new, (t, m, s)
