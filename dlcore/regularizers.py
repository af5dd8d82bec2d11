"""Weight penalties (L2, L1, elastic net) and decoupled weight decay, on weights only.

Which leaves count as weights is decided from parameter paths: by default any leaf whose path
contains a component named ``bias`` or ``scale``, or a ``BatchNorm``/``LayerNorm`` submodule
(Flax numbers them ``BatchNorm_0``, ...), is excluded, because shrinking offsets and norm gains
does not reduce capacity and only biases the fit.

Per-layer strengths (deck 004: "a separate penalty term for each layer"): ``lambda`` may
differ by layer, L = data loss + sum_l lambda_l R(W_l), the layers picked by globs over
``/``-joined parameter paths (see :class:`LayerPenalty`).
"""

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax
from pydantic import Field, NonNegativeFloat, model_validator

from dlcore.checks import check_choice
from dlcore.config.errors import FieldError
from dlcore.config.section import Section, one_of
from dlcore.traced import is_traced, statically_zero

DEFAULT_EXCLUDE: tuple[str, ...] = ("bias", "scale", "BatchNorm", "LayerNorm")

Penalty = Callable[[object], jax.Array]  # params -> scalar


def _key_name(entry) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def weight_mask(params, exclude: Sequence[str] = DEFAULT_EXCLUDE):
    """A pytree of bools like ``params``: True for leaves that are penalized weights.

    A leaf is excluded when any component of its path equals a name in ``exclude``, or is
    that name followed by Flax's ``_<n>`` module index (``BatchNorm_3`` matches
    ``BatchNorm``).

    Example:
      >>> weight_mask({"Dense_0": {"kernel": jnp.ones(2), "bias": jnp.ones(2)}})
      {'Dense_0': {'bias': False, 'kernel': True}}
    """
    patterns = [re.compile(rf"{re.escape(name)}(_\d+)?") for name in exclude]

    def is_weight(path, _leaf) -> bool:
        names = [_key_name(entry) for entry in path]
        return not any(p.fullmatch(n) for p in patterns for n in names)

    return jax.tree_util.tree_map_with_path(is_weight, params)


def _masked_sum(fn, params, exclude: Sequence[str]) -> jax.Array:
    mask = weight_mask(params, exclude)
    terms = jax.tree.map(lambda w, keep: jnp.sum(fn(w)) if keep else 0.0, params, mask)
    return sum(jax.tree.leaves(terms), jnp.zeros(()))


def l2_penalty(params, exclude: Sequence[str] = DEFAULT_EXCLUDE) -> jax.Array:
    """R(W) = sum_k sum_l W_kl^2 over the weight leaves (the lectures' L2 term)."""
    return _masked_sum(jnp.square, params, exclude)


def l1_penalty(params, exclude: Sequence[str] = DEFAULT_EXCLUDE) -> jax.Array:
    """R(W) = sum_k sum_l |W_kl| over the weight leaves; drives weights to exactly zero."""
    return _masked_sum(jnp.abs, params, exclude)


def elastic_net_penalty(
    params, beta: float = 1.0, exclude: Sequence[str] = DEFAULT_EXCLUDE
) -> jax.Array:
    """R(W) = sum_k sum_l (beta W_kl^2 + |W_kl|), the lectures' elastic net."""
    return beta * l2_penalty(params, exclude) + l1_penalty(params, exclude)


def make_penalty(
    name: str,
    strength: float,
    *,
    beta: float = 1.0,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
) -> Penalty:
    """A loss term ``params -> lambda * R(W)`` for the regularizer registered as ``name``.

    Add it to the data loss: L = (1/N) sum_i L_i + lambda R(W).

    Args:
      name: ``"l2"``, ``"l1"`` or ``"elastic_net"``.
      strength: lambda >= 0.
      beta: the L2 weight inside the elastic net (ignored otherwise).
      exclude: path names that are not penalized.

    Example:
      >>> penalty = make_penalty("l2", 0.1)
      >>> penalty({"Dense_0": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}})
      Array(0.4, dtype=float32)
    """
    check_choice(name, REGULARIZERS, "regularizer")
    if not is_traced(strength) and strength < 0:  # a traced one was checked as config
        raise ValueError(f"regularizer strength must be >= 0; got {strength!r}")
    exclude = tuple(exclude)
    if name == "elastic_net":
        return lambda params: strength * elastic_net_penalty(params, beta, exclude)
    fn = REGULARIZERS[name]
    return lambda params: strength * fn(params, exclude)


def decoupled_weight_decay(
    rate: float, exclude: Sequence[str] = DEFAULT_EXCLUDE
) -> optax.GradientTransformation:
    """Adds ``rate * w`` to the update of every weight leaf (Loshchilov & Hutter's AdamW decay).

    Place it in an ``optax.chain`` before the learning-rate scaling, e.g.
    ``optax.chain(optax.scale_by_adam(), decoupled_weight_decay(1e-4), optax.scale(-lr))``:
    the decay then bypasses the adaptive scaling, unlike an L2 term in the loss.

    Example:
      >>> tx = decoupled_weight_decay(0.5)
      >>> params = {"kernel": jnp.ones(2), "bias": jnp.ones(2)}
      >>> updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
      >>> updates["kernel"].tolist(), updates["bias"].tolist()
      ([0.5, 0.5], [0.0, 0.0])
    """
    if rate < 0:
        raise ValueError(f"weight decay rate must be >= 0; got {rate!r}")
    exclude = tuple(exclude)
    return optax.add_decayed_weights(rate, mask=lambda params: weight_mask(params, exclude))


REGULARIZERS: dict[str, Callable[..., jax.Array]] = {
    "l2": l2_penalty,
    "l1": l1_penalty,
    "elastic_net": elastic_net_penalty,
}


def _path(path) -> str:
    return "/".join(_key_name(entry) for entry in path)


def glob_matches(pattern: str, path: str) -> bool:
    """Whether ``pattern`` (fnmatch) matches the ``/``-joined ``path`` or one of its prefixes,
    the rule of the optimizer's ``freeze`` globs: ``"Dense_0"`` matches ``Dense_0/kernel``."""
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:n]), pattern) for n in range(1, len(parts) + 1))


class LayerPenalty:
    """A weight penalty whose strength depends on the layer: ``params -> sum_l lambda_l R(W_l)``.

    .. math::  \\Omega(W) = \\sum_{\\text{weight leaves } k} \\lambda_{k}\\, R(W_k)

    ``lambda_k`` is the strength of the first glob in ``strengths`` that matches leaf ``k``'s
    path (or a prefix of it), else ``default``. Biases and norm parameters (``exclude``) are
    never penalized.

    Args:
      name: ``"l2"``, ``"l1"`` or ``"elastic_net"``.
      strengths: ``{glob: lambda}``, e.g. ``{"Dense_0": 1e-3, "Dense_2": 0.0}``.
      default: lambda of the weights no glob matches.
      beta: the L2 weight inside the elastic net.
      exclude: path names that are not penalized.

    Example:
      >>> p = {"Dense_0": {"kernel": jnp.ones((2, 2))}, "Dense_1": {"kernel": jnp.ones(3)}}
      >>> float(LayerPenalty("l2", {"Dense_1": 1.0}, default=0.5)(p))  # 0.5*4 + 1*3
      5.0
    """

    def __init__(
        self,
        name: str,
        strengths: Mapping[str, float],
        default: float = 0.0,
        beta: float = 1.0,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
    ):
        check_choice(name, REGULARIZERS, "regularizer")
        concrete = [v for v in (default, *strengths.values()) if not is_traced(v)]
        if concrete and min(concrete) < 0:  # traced ones (a population's) were checked as config
            raise ValueError(f"penalty strengths must be >= 0; got {dict(strengths)}, {default}")
        self.name, self.strengths, self.default = name, dict(strengths), default
        self.beta, self.exclude = beta, tuple(exclude)

    def strength(self, path: str) -> float:
        """lambda of the weight leaf at ``path``."""
        hits = [lam for pattern, lam in self.strengths.items() if glob_matches(pattern, path)]
        return hits[0] if hits else self.default

    def _elementwise(self, w: jax.Array) -> jax.Array:
        if self.name == "l1":
            return jnp.abs(w)
        square = jnp.square(w)
        return square if self.name == "l2" else self.beta * square + jnp.abs(w)

    def __call__(self, params) -> jax.Array:
        mask = weight_mask(params, self.exclude)

        def term(path, w, keep):
            lam = self.strength(_path(path)) if keep else 0.0
            if statically_zero(lam):  # a traced lambda takes the general path
                return jnp.zeros((), w.dtype)
            return lam * jnp.sum(self._elementwise(w))

        terms = jax.tree_util.tree_map_with_path(term, params, mask)
        return sum(jax.tree.leaves(terms), jnp.zeros(()))

    def check(self, params) -> None:
        """Refuses a glob that matches no penalized weight.

        Raises:
          FieldError: naming ``task.penalty_layers``, the glob and some weight paths.
        """
        mask = weight_mask(params, self.exclude)
        flat = jax.tree_util.tree_flatten_with_path(mask)[0]
        paths = [_path(path) for path, keep in flat if keep]
        for pattern in self.strengths:
            if not any(glob_matches(pattern, p) for p in paths):
                shown = ", ".join(paths[:6]) + (", ..." if len(paths) > 6 else "")
                raise FieldError(
                    "task.penalty_layers",
                    f"pattern {pattern!r} matches no penalized weight; weights are: {shown}",
                )


def check_penalty(penalty: Penalty | None, params) -> None:
    """Lets a per-layer penalty check its globs against the parameters (call it with the
    initial parameters, before training); a plain penalty function has nothing to check."""
    if isinstance(penalty, LayerPenalty):
        penalty.check(params)


class PenaltySection(Section):
    """The weight-penalty fields a task section inherits: L = data loss + lambda R(W)."""

    penalty: one_of(("none", *REGULARIZERS), "penalty") = Field(
        "none", description="weight penalty added to the loss (biases and norms excluded)"
    )
    penalty_strength: float = Field(0.0, ge=0.0, description="lambda of the penalty")
    elastic_net_beta: float = Field(1.0, ge=0.0, description="L2 weight inside elastic net")
    penalty_layers: dict[str, NonNegativeFloat] = Field(
        default_factory=dict,
        description="per-layer lambda by path glob, e.g. {Dense_0 = 1e-3}; penalty_strength "
        "is the rest's (first matching glob wins)",
    )

    @model_validator(mode="after")
    def _strength_needs_penalty(self):
        if self.penalty == "none" and self.penalty_strength > 0:
            raise ValueError("penalty_strength is set but penalty = 'none'; name the penalty")
        if self.penalty == "none" and self.penalty_layers:
            raise ValueError("penalty_layers is set but penalty = 'none'; name the penalty")
        if any(not pattern for pattern in self.penalty_layers):
            raise ValueError("penalty_layers: an empty pattern matches nothing; remove it")
        return self

    def make_penalty(self) -> Penalty | None:
        if self.penalty != "none" and self.penalty_layers:
            return LayerPenalty(
                self.penalty,
                self.penalty_layers,
                self.penalty_strength,
                self.elastic_net_beta,
            )
        if self.penalty == "none" or statically_zero(self.penalty_strength):
            return None
        return make_penalty(self.penalty, self.penalty_strength, beta=self.elastic_net_beta)
