"""Greedy layer-wise training inside one compiled step: which layer trains, and nothing else moves.

A stack of L layers trains one layer at a time (Hinton et al. 2006, Bengio et al. 2007), all
in ONE run, ONE loop and ONE compiled step: the step reads ``state.step`` and picks its
stage. With S steps per layer, update number t (0-based) trains

    l(t) = min(floor(t / S), L - 1)

i.e. layer l during steps [l S, (l + 1) S); after its stage ends the LAST layer keeps
training (the run's total steps may exceed L S; they are never wasted, and a run that
reaches L S has given every layer its full S steps). Tasks check ``total >= L S`` up front.

Every other layer must get exactly zero change. Masking gradients is not enough: Adam's
momentum, or decoupled weight decay, would keep moving a frozen layer. So the optax
UPDATES are masked, leaf by leaf,

    u'_p = u_p   if layer(p) = l(t),   else 0

with ``jnp.where`` (not a product: ``0 * inf`` would be NaN). Optionally the optimizer
state is re-initialised at the first step of every stage (``restart=True``), so each layer
starts with fresh moments and its own Adam bias correction and schedule count, as if it
were trained alone; without it, a fresh layer's first Adam steps see a large global count
and move up to several times the learning rate.

Which leaves form layer l is given as glob patterns over ``/``-joined parameter paths (the
syntax of the optimizer's ``freeze`` field, :mod:`dlcore.optim.freezing`), one list per
layer, so any parameter layout works: a stacked autoencoder's encoder and decoder layer l,
an RBM's weights and both biases.

Example (a two-layer stack, S = 100)::

    layers = (("encoder/Dense_0", "decoder/Dense_0"), ("encoder/Dense_1", "decoder/Dense_1"))
    ids = layer_ids(params, layers)                   # static: built once, at trace time
    params, opt_state = greedy_update(optimizer, grads, opt_state, params, ids,
                                      state.step, steps_per_layer=100, num_layers=2)
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from dlcore.config.errors import FieldError
from dlcore.optim.freezing import param_paths, path_matches

LayerPatterns = Sequence[Sequence[str]]  # layer index -> globs of its parameter paths


def active_layer(step: jax.Array, steps_per_layer: int, num_layers: int) -> jax.Array:
    """The layer update number ``step`` trains: l(t) = min(floor(t / S), L - 1).

    Args:
      step: t, the number of updates applied so far (int scalar, traced or not).
      steps_per_layer: S > 0.
      num_layers: L > 0.

    Returns:
      An int32 scalar in [0, L - 1].

    Example:
      >>> [int(active_layer(t, 3, 2)) for t in (0, 2, 3, 5, 6, 50)]
      [0, 0, 1, 1, 1, 1]
    """
    if steps_per_layer < 1 or num_layers < 1:
        raise ValueError(
            f"steps_per_layer and num_layers must be >= 1; got {steps_per_layer}, {num_layers}"
        )
    step = jnp.asarray(step, jnp.int32)
    return jnp.minimum(step // steps_per_layer, num_layers - 1).astype(jnp.int32)


def stage_starts(step: jax.Array, steps_per_layer: int, num_layers: int) -> jax.Array:
    """Whether update ``step`` is the first of layer l >= 1's stage: t = l S, 1 <= l < L.

    Step 0 is excluded: the state is fresh there anyway.

    Example:
      >>> [bool(stage_starts(t, 3, 2)) for t in (0, 3, 6)]
      [False, True, False]
    """
    step = jnp.asarray(step, jnp.int32)
    return (step > 0) & (step % steps_per_layer == 0) & (step < steps_per_layer * num_layers)


def layer_ids(params: Any, layers: LayerPatterns) -> Any:
    """Each leaf's layer index: a tree shaped like ``params`` holding Python ints.

    Args:
      params: the parameter tree (arrays or ``jax.ShapeDtypeStruct``; only paths are read).
      layers: for layer l, the globs (``fnmatch``, matched against the path and its
        prefixes, as ``optimizer.freeze`` is) of the leaves it owns.

    Returns:
      A tree with the structure of ``params`` whose leaves are layer indices.

    Raises:
      ValueError: a leaf that no layer or several layers claim, or a pattern that
        matches nothing (each names the paths).

    Example:
      >>> params = {"encoder": {"Dense_0": {"kernel": w0, "bias": b0},
      ...                       "Dense_1": {"kernel": w1, "bias": b1}}}
      >>> layer_ids(params, [["encoder/Dense_0"], ["encoder/Dense_1"]])
      {'encoder': {'Dense_0': {'bias': 0, 'kernel': 0}, 'Dense_1': {'bias': 1, 'kernel': 1}}}
    """
    paths = param_paths(params)
    for layer, patterns in enumerate(layers):
        for pattern in patterns:
            if not any(path_matches([pattern], p) for p in paths):
                raise ValueError(f"layer {layer}: pattern {pattern!r} matches no parameter path")
    ids = []
    for p in paths:
        owners = [i for i, patterns in enumerate(layers) if path_matches(patterns, p)]
        if len(owners) != 1:
            what = "no layer" if not owners else f"layers {owners}"
            raise ValueError(f"parameter {p!r} belongs to {what}; each belongs to exactly one")
        ids.append(owners[0])
    return jax.tree.unflatten(jax.tree.structure(params), ids)


def mask_updates(updates: Any, ids: Any, layer: jax.Array) -> Any:
    """Keeps the updates of layer ``layer``; every other leaf gets exactly zero.

    Args:
      updates: optax updates (shaped like the parameters).
      ids: :func:`layer_ids` of the parameters (static ints).
      layer: the active layer (traced int scalar).

    Returns:
      ``updates`` with u_p replaced by 0 wherever layer(p) != layer.
    """
    return jax.tree.map(
        lambda u, i: jnp.where(layer == i, u, jnp.zeros_like(u)),
        updates,
        ids,
    )


def greedy_update(
    optimizer: optax.GradientTransformation,
    grads: Any,
    opt_state: Any,
    params: Any,
    ids: Any,
    step: jax.Array,
    steps_per_layer: int,
    num_layers: int,
    restart: bool = True,
) -> tuple[Any, Any]:
    """One optimizer update that moves only the active layer l(step).

    Args:
      optimizer: the chain over all of ``params``.
      grads: gradients shaped like ``params``.
      opt_state: the chain's state.
      params: all the stack's parameters.
      ids: :func:`layer_ids` of ``params``.
      step: the update number t (``state.step``).
      steps_per_layer: S.
      num_layers: L.
      restart: re-initialise ``opt_state`` at the first step of each stage (see the
        module docstring); the restart happens before this step's update.

    Returns:
      ``(params, opt_state)`` after the update; leaves of other layers get a zero update.
    """
    if restart:
        fresh = optimizer.init(params)
        first = stage_starts(step, steps_per_layer, num_layers)
        opt_state = jax.tree.map(lambda f, o: jnp.where(first, f, o), fresh, opt_state)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    updates = mask_updates(updates, ids, active_layer(step, steps_per_layer, num_layers))
    return optax.apply_updates(params, updates), opt_state


def check_stage_budget(total_steps: int, num_layers: int, steps_per_layer: int) -> None:
    """Refuses a run too short to give every layer its S steps (``total >= L S``).

    Args:
      total_steps: the run's updates (``train.epochs`` x batches per epoch).
      num_layers: L.
      steps_per_layer: S.

    Raises:
      FieldError: naming ``task.steps_per_layer``, the steps needed and the run's.
    """
    needed = num_layers * steps_per_layer
    if total_steps < needed:
        raise FieldError(
            "task.steps_per_layer",
            f"{num_layers} layers x {steps_per_layer} steps need {needed} updates; the run "
            f"has {total_steps} (train.epochs x batches per epoch): lower steps_per_layer or "
            "raise train.epochs",
        )
