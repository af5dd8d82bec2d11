"""Boundary checks that turn shape and value mistakes into one-line errors before jit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: config validation imports this, and needs no JAX
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


def check_same_shape(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    """Raises ValueError unless ``a`` and ``b`` have identical shapes (no silent broadcast)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape; got {name_a} "
            f"{tuple(a.shape)} and {name_b} {tuple(b.shape)}"
        )


def check_positive_int(value: int, name: str) -> None:
    """Raises ValueError unless ``value`` is an int >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def check_probability(value: float, name: str, *, allow_one: bool = False) -> None:
    """Raises ValueError unless 0 <= ``value`` < 1 (or <= 1 when ``allow_one``)."""
    upper_ok = value <= 1 if allow_one else value < 1
    if not (0 <= value and upper_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}; got {value!r}")
