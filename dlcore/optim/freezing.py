"""Freezing parameter subsets by path pattern, for fine-tuning.

A parameter's path joins its keys with ``/`` (``Dense_0/kernel``). A pattern is a glob
(``fnmatch``: ``*``, ``?``, ``[...]``; ``*`` also crosses ``/``) matched against the path and
each of its prefixes, so ``"Dense_0"`` and ``"Dense_0/*"`` both freeze the whole layer.
Frozen leaves get zero updates from ``optax.set_to_zero`` and no optimizer state: the
trainable transform sees them as ``optax.MaskedNode``.
"""

import fnmatch
from collections.abc import Sequence
from typing import Any

import jax
import optax

TRAINABLE, FROZEN = "trainable", "frozen"


class FreezePatternError(ValueError):
    """A freeze pattern that matches no parameter (the config names ``optimizer.freeze``)."""


def param_paths(params: Any) -> list[str]:
    """The ``/``-joined path of every leaf of ``params``, in tree order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return [jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in flat]


def _matches(pattern: str, path: str) -> bool:
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:n]), pattern) for n in range(1, len(parts) + 1))


def check_freeze_patterns(patterns: Sequence[str], params: Any) -> None:
    """Raises a one-line ValueError for a pattern that matches no parameter.

    Call it before training with the config's ``optimizer.freeze`` and the initial
    params (``build_optimizer``'s chain also runs it in ``init``).

    Raises:
      FreezePatternError: (a ValueError) naming the pattern and listing a few existing paths.

    Example:
      >>> import jax.numpy as jnp
      >>> check_freeze_patterns(["Dense_0/*"], {"Dense_0": {"kernel": jnp.ones(2)}})
    """
    paths = param_paths(params)
    for pattern in patterns:
        if not any(_matches(pattern, p) for p in paths):
            shown = ", ".join(paths[:6]) + (", ..." if len(paths) > 6 else "")
            raise FreezePatternError(
                f"freeze pattern {pattern!r} matches no parameter; parameter paths "
                f"({len(paths)}) are: {shown}"
            )


def freeze_labels(patterns: Sequence[str], params: Any) -> Any:
    """A tree like ``params`` holding ``"frozen"`` or ``"trainable"`` for each leaf."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    labels = [
        FROZEN
        if any(
            _matches(p, jax.tree_util.keystr(path, simple=True, separator="/")) for p in patterns
        )
        else TRAINABLE
        for path, _ in flat
    ]
    return jax.tree_util.tree_unflatten(treedef, labels)


def freeze(
    inner: optax.GradientTransformation, patterns: Sequence[str]
) -> optax.GradientTransformation:
    """Applies ``inner`` to the trainable leaves and zero updates to the frozen ones.

    Args:
      inner: the transform for trainable parameters (clipping and the update rule, so
        that a global-norm clip sees only trainable gradients).
      patterns: glob patterns over ``/``-joined parameter paths; empty means no freezing.

    Returns:
      ``inner`` itself when ``patterns`` is empty, else an ``optax.multi_transform``
      whose ``init`` raises ValueError for a pattern that matches no parameter.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> opt = freeze(optax.sgd(0.1), ["Dense_0/*"])
      >>> params = {"Dense_0": {"w": jnp.ones(2)}, "Dense_1": {"w": jnp.ones(2)}}
      >>> updates, _ = opt.update(params, opt.init(params))
      >>> [round(float(u["w"][0]), 6) for u in (updates["Dense_0"], updates["Dense_1"])]
      [0.0, -0.1]
    """
    patterns = tuple(patterns)
    if not patterns:
        return inner
    split = optax.multi_transform(
        {TRAINABLE: inner, FROZEN: optax.set_to_zero()},
        lambda tree: freeze_labels(patterns, tree),
    )

    def init_fn(params):
        check_freeze_patterns(patterns, params)
        return split.init(params)

    return optax.GradientTransformationExtraArgs(init_fn, split.update)
