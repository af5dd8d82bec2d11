"""Weight decay added to the gradient (coupled, PyTorch's ``weight_decay``) and the masks
that say which parameters any decay touches.

Two kinds of decay, with ``lambda`` the rate and ``g`` the (clipped) gradient:

- **coupled** (``coupled_weight_decay``, every optimizer): ``g <- g + lambda p`` before the
  update rule, i.e. the gradient of an L2 term ``lambda/2 ||p||^2``; an adaptive rule then
  divides the decay by its running RMS too. This is ``weight_decay`` of
  ``torch.optim.SGD``, ``Adam``, ``RMSprop`` and ``Adagrad``.
- **decoupled** (AdamW's ``weight_decay``): ``lambda p`` is added after the adaptive
  scaling, so it is not divided by ``sqrt(v_hat)``; ``torch.optim.AdamW``'s rule.

Which leaves decay: by default dlcore's name heuristic
(:func:`dlcore.regularizers.weight_mask`: not biases, scales, BatchNorm or LayerNorm).
``decay_include`` / ``decay_exclude`` globs replace it: a leaf decays when its
``/``-joined path (or a prefix of it, as for ``freeze``) matches an include glob (or no
include glob is given) and matches no exclude glob. ``decay_include = ["*"]`` decays every
parameter, as PyTorch does for a parameter group.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import optax

from dlcore.optim.freezing import check_freeze_patterns, path_matches
from dlcore.regularizers import weight_mask
from dlcore.traced import is_traced

Mask = Callable[[Any], Any]  # params -> tree of bools like params


def decay_mask(include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Mask:
    """The decay mask of the globs, or dlcore's name heuristic when both are empty.

    Args:
      include: globs of the leaves that may decay; empty means every leaf.
      exclude: globs of the leaves that never decay.

    Returns:
      A function ``params -> tree of bools`` for ``optax.add_decayed_weights(mask=...)``.

    Example:
      >>> import jax.numpy as jnp
      >>> params = {"Dense_0": {"kernel": jnp.ones(2), "bias": jnp.ones(2)}}
      >>> decay_mask()(params), decay_mask(["*"])(params)
      ({'Dense_0': {'bias': False, 'kernel': True}}, {'Dense_0': {'bias': True, 'kernel': True}})
    """
    include, exclude = tuple(include), tuple(exclude)
    if not include and not exclude:
        return weight_mask

    def decays(path, _leaf) -> bool:
        name = jax.tree_util.keystr(path, simple=True, separator="/")
        wanted = not include or path_matches(include, name)
        return wanted and not path_matches(exclude, name)

    return lambda params: jax.tree_util.tree_map_with_path(decays, params)


def coupled_weight_decay(rate: float, mask: Mask | None = None) -> optax.GradientTransformation:
    """``g <- g + rate * p`` on the masked leaves: put it in front of an update rule.

    .. math::  g_t \\leftarrow g_t + \\lambda\\, p_{t-1}

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from dlcore.optim import adam
      >>> opt = optax.chain(coupled_weight_decay(1e-4, decay_mask(["*"])), adam(1e-3))
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = opt.update(params, opt.init(params), params)

    Raises:
      ValueError: for a negative rate.
    """
    if not is_traced(rate) and rate < 0.0:  # a traced rate was checked as config
        raise ValueError(f"coupled_weight_decay must be >= 0; got {rate}")
    return optax.add_decayed_weights(rate, mask=weight_mask if mask is None else mask)


def check_decay_patterns(include: Sequence[str], exclude: Sequence[str], params: Any) -> None:
    """A glob that matches no parameter is a mistake (a typo would silently decay or spare
    everything): raises ``FreezePatternError`` naming ``decay_include`` or ``decay_exclude``.
    """
    check_freeze_patterns(include, params, "decay_include")
    check_freeze_patterns(exclude, params, "decay_exclude")


def check_decay_on_init(
    inner: optax.GradientTransformation, include: Sequence[str], exclude: Sequence[str]
) -> optax.GradientTransformation:
    """``inner`` whose ``init`` first runs :func:`check_decay_patterns` on the full params
    (outside any freezing split, so a glob may name frozen parameters)."""
    include, exclude = tuple(include), tuple(exclude)
    if not include and not exclude:
        return inner

    def init_fn(params):
        check_decay_patterns(include, exclude, params)
        return inner.init(params)

    return optax.GradientTransformationExtraArgs(init_fn, inner.update)
