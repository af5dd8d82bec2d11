"""Boundary checks that turn shape and value mistakes into one-line errors before jit."""

from collections.abc import Iterable

import jax


def check_same_leading_dim(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    """Raises ValueError unless ``a`` and ``b`` agree on their first (batch) dimension."""
    if a.ndim == 0 or b.ndim == 0 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must share the batch dimension; got {name_a} "
            f"{tuple(a.shape)} and {name_b} {tuple(b.shape)}"
        )


def check_rank(x: jax.Array, rank: int, name: str, layout: str) -> None:
    """Raises ValueError unless ``x`` has ``rank`` dimensions laid out as ``layout``."""
    if x.ndim != rank:
        raise ValueError(f"{name} must be {layout} (rank {rank}); got shape {tuple(x.shape)}")


def check_choice(value: str, choices: Iterable[str], what: str) -> None:
    """Raises ValueError unless ``value`` is one of ``choices``; lists the valid ones."""
    choices = sorted(choices)
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(choices)}")
