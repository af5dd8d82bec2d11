"""Freezing parameter subsets by path pattern, for fine-tuning.

A parameter's path joins its keys with ``/`` (``Dense_0/kernel``). A pattern is a glob
(``fnmatch``: ``*``, ``?``, ``[...]``; ``*`` also crosses ``/``) matched against the path and
each of its prefixes, so ``"Dense_0"`` and ``"Dense_0/*"`` both freeze the whole layer.
Frozen leaves get zero updates from ``optax.set_to_zero`` and no optimizer state: the
trainable transform sees them as ``optax.MaskedNode``.

``train_only`` patterns say the complement: every leaf that none of them matches is frozen.
Transfer learning's three regimes are then one line each (LeNet-5 names shown):
linear probe ``train_only = ["dense2"]``, fine-tune the last blocks
``train_only = ["dense1", "dense2"]``, fine-tune all: neither field.
"""

import fnmatch
from collections.abc import Sequence
from typing import Any

import jax
import optax

TRAINABLE, FROZEN = "trainable", "frozen"


class FreezePatternError(ValueError):
    """A freeze, train-only or decay-mask pattern that matches no parameter.

    Attributes:
      field: the optimizer field that holds the pattern: ``"freeze"``, ``"train_only"``,
        ``"decay_include"`` or ``"decay_exclude"``.
    """

    def __init__(self, message: str, field: str = "freeze"):
        super().__init__(message)
        self.field = field


def param_paths(params: Any) -> list[str]:
    """The ``/``-joined path of every leaf of ``params``, in tree order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return [jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in flat]


def _matches(pattern: str, path: str) -> bool:
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:n]), pattern) for n in range(1, len(parts) + 1))


def path_matches(patterns: Sequence[str], path: str) -> bool:
    """Whether any glob of ``patterns`` matches ``path`` or one of its prefixes.

    Example:
      >>> path_matches(["dense*"], "dense2/kernel"), path_matches(["conv"], "conv1/bias")
      (True, False)
    """
    return any(_matches(p, path) for p in patterns)


def check_freeze_patterns(patterns: Sequence[str], params: Any, field: str = "freeze") -> None:
    """Raises a one-line ValueError for a pattern that matches no parameter.

    Call it before training with the config's ``optimizer.freeze`` (or ``train_only``,
    with ``field = "train_only"``) and the initial params (``build_optimizer``'s chain
    also runs it in ``init``).

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
            what = {"freeze": "freeze", "train_only": "train-only"}.get(field, field)
            raise FreezePatternError(
                f"{what} pattern {pattern!r} matches no parameter; parameter paths "
                f"({len(paths)}) are: {shown}",
                field,
            )


def is_frozen(path: str, patterns: Sequence[str], train_only: Sequence[str] = ()) -> bool:
    """Whether a ``/``-joined parameter path is frozen: a ``patterns`` glob matches it, or
    ``train_only`` is given and none of its globs matches it.

    Example:
      >>> [is_frozen(p, (), ["dense2"]) for p in ("conv1/kernel", "dense2/bias")]
      [True, False]
    """
    if path_matches(patterns, path):
        return True
    return bool(train_only) and not path_matches(train_only, path)


def freeze_labels(patterns: Sequence[str], params: Any, train_only: Sequence[str] = ()) -> Any:
    """A tree like ``params`` holding ``"frozen"`` or ``"trainable"`` for each leaf."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    labels = [
        FROZEN
        if is_frozen(jax.tree_util.keystr(path, simple=True, separator="/"), patterns, train_only)
        else TRAINABLE
        for path, _ in flat
    ]
    return jax.tree_util.tree_unflatten(treedef, labels)


def freeze(
    inner: optax.GradientTransformation,
    patterns: Sequence[str],
    train_only: Sequence[str] = (),
) -> optax.GradientTransformation:
    """Applies ``inner`` to the trainable leaves and zero updates to the frozen ones.

    Args:
      inner: the transform for trainable parameters (clipping and the update rule, so
        that a global-norm clip sees only trainable gradients).
      patterns: glob patterns over ``/``-joined parameter paths; empty means no freezing.
      train_only: glob patterns of the only leaves that train (all others are frozen);
        empty means no such restriction.

    Returns:
      ``inner`` itself when both are empty, else an ``optax.multi_transform`` whose
      ``init`` raises ValueError for a pattern that matches no parameter.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> opt = freeze(optax.sgd(0.1), ["Dense_0/*"])
      >>> params = {"Dense_0": {"w": jnp.ones(2)}, "Dense_1": {"w": jnp.ones(2)}}
      >>> updates, _ = opt.update(params, opt.init(params))
      >>> [round(float(u["w"][0]), 6) for u in (updates["Dense_0"], updates["Dense_1"])]
      [0.0, -0.1]
    """
    patterns, train_only = tuple(patterns), tuple(train_only)
    if not patterns and not train_only:
        return inner
    split = optax.multi_transform(
        {TRAINABLE: inner, FROZEN: optax.set_to_zero()},
        lambda tree: freeze_labels(patterns, tree, train_only),
    )

    def init_fn(params):
        check_freeze_patterns(patterns, params)
        check_freeze_patterns(train_only, params, "train_only")
        return split.init(params)

    return optax.GradientTransformationExtraArgs(init_fn, split.update)
