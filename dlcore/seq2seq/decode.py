"""Compiled decoding of any :class:`~dlcore.seq2seq.protocol.StepFns`: greedy, sampling, ensembles.

Every decoder runs one ``lax.while_loop`` over at most ``max_len`` steps and stops as soon as
every sequence has emitted ``<eos>``. The step functions and the lengths are static, the
parameters and inputs are not, so each decoder compiles once per (shapes, static arguments)::

    y_t = choose(log p(· | y_{<t}, x)),   t = 1 .. max_len, until y_t = <eos>
    log P(y | x) = Σ_{t <= len} log p(y_t | y_{<t}, x)

Beam search lives in :mod:`dlcore.seq2seq.beam`.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.seq2seq.protocol import BOS, EOS, PAD, StepFns


class Decoded(NamedTuple):
    """One decoded sequence per example.

    Attributes:
      tokens: ``[B, max_len]`` int32, the tokens after ``<bos>``: ``<eos>`` included, then PAD.
      lengths: ``[B]`` tokens up to and including ``<eos>`` (``max_len`` if it never came).
      log_prob: ``[B]`` ``log P(tokens | src)`` under the model (untempered logits).
      aux: the step's aux dict, each leaf stacked over steps ``[B, max_len, ...]``, zero
        after the end (e.g. ``aux["attention"]`` ``[B, max_len, S]``).
      steps: number of decoding steps run (< ``max_len`` when all ended early).
    """

    tokens: jax.Array
    lengths: jax.Array
    log_prob: jax.Array
    aux: Any
    steps: jax.Array


def check_max_len(max_len: int) -> None:
    """Raise a clear ``ValueError`` unless ``max_len`` is a positive int (it is static)."""
    if not isinstance(max_len, (int, np.integer)) or isinstance(max_len, bool) or max_len < 1:
        raise ValueError(f"max_len must be a positive int; got {max_len!r}")


def batch_size(src: Any) -> int:
    """``B``, the leading dimension of the source (an array or a pytree of arrays)."""
    return jax.tree.leaves(src)[0].shape[0]


def aux_history(fns: StepFns, params, memory, carry, rows: int, lead: tuple, max_len: int):
    """Zeros shaped like the step's aux leaves, stacked over ``max_len`` steps after ``lead``:
    a leaf ``[rows, ...]`` gives ``[*lead, max_len, ...]``. Also returns the logits' shape."""
    token = jnp.zeros((rows,), jnp.int32)
    _, logits, aux = jax.eval_shape(fns.step, params, memory, carry, token)
    history = jax.tree.map(lambda a: jnp.zeros((*lead, max_len, *a.shape[1:]), a.dtype), aux)
    return history, logits


def write_step(history_BxT: jax.Array, value_B: jax.Array, t: jax.Array, axis: int = 1):
    """``history[..., t, ...] = value`` along ``axis`` (the step axis)."""
    return jax.lax.dynamic_update_index_in_dim(history_BxT, value_B, t, axis)


def keep_where(mask_B: jax.Array, new: Any, old: Any) -> Any:
    """Leafwise ``where(mask, new, old)`` with ``mask`` ``[B]`` (or ``[B, K]``) broadcast over
    the trailing axes of each leaf (explicitly: rank promotion is strict)."""

    def pick(n, o):
        m = mask_B.reshape(mask_B.shape + (1,) * (n.ndim - mask_B.ndim))
        return jnp.where(m, n, o)

    return jax.tree.map(pick, new, old)


def _decode(fns: StepFns, params, src, max_len: int, choose: Callable) -> Decoded:
    """The loop shared by greedy and sampling; ``choose(logits_BxV, t) -> token_B``."""
    memory = fns.encode(params, src)
    carry = fns.init_carry(params, memory)
    B = batch_size(src)
    aux0, logits_shape = aux_history(fns, params, memory, carry, B, (B,), max_len)
    log_dtype = jnp.promote_types(logits_shape.dtype, jnp.float32)

    class State(NamedTuple):
        t: jax.Array
        carry: Any
        token: jax.Array  # [B] the last token fed back
        done: jax.Array  # [B] <eos> emitted
        tokens: jax.Array  # [B, max_len]
        lengths: jax.Array  # [B]
        log_prob: jax.Array  # [B]
        aux: Any

    def cond(s: State):
        return (s.t < max_len) & ~jnp.all(s.done)

    def body(s: State) -> State:
        carry, logits, aux = fns.step(params, memory, s.carry, s.token)
        logp_BxV = jax.nn.log_softmax(logits.astype(log_dtype), axis=-1)
        token = choose(logits, s.t).astype(jnp.int32)
        alive = ~s.done
        token = jnp.where(alive, token, PAD)
        picked = jnp.take_along_axis(logp_BxV, token[:, None], axis=1)[:, 0]
        ends = alive & (token == EOS)
        zero_aux = jax.tree.map(jnp.zeros_like, aux)
        aux_now = keep_where(alive, aux, zero_aux)
        return State(
            t=s.t + 1,
            carry=carry,
            token=token,
            done=s.done | ends,
            tokens=write_step(s.tokens, token, s.t),
            lengths=jnp.where(ends, s.t + 1, s.lengths),
            log_prob=s.log_prob + jnp.where(alive, picked, 0.0),
            aux=jax.tree.map(lambda h, a: write_step(h, a, s.t), s.aux, aux_now),
        )

    s = State(
        t=jnp.zeros((), jnp.int32),
        carry=carry,
        token=jnp.full((B,), BOS, jnp.int32),
        done=jnp.zeros((B,), bool),
        tokens=jnp.full((B, max_len), PAD, jnp.int32),
        lengths=jnp.full((B,), max_len, jnp.int32),
        log_prob=jnp.zeros((B,), log_dtype),
        aux=aux0,
    )
    s = jax.lax.while_loop(cond, body, s)
    return Decoded(s.tokens, s.lengths, s.log_prob, s.aux, s.t)


@functools.partial(jax.jit, static_argnames=("fns", "max_len"))
def _greedy(fns, params, src, max_len):
    return _decode(fns, params, src, max_len, lambda logits, t: jnp.argmax(logits, axis=-1))


def greedy(fns: StepFns, params, src, max_len: int) -> Decoded:
    """Greedy decoding, ``y_t = argmax_v log p(v | y_{<t}, x)``, compiled and batched.

    Args:
      fns: the model's step functions (static: hashable, compiled once per value).
      params: their parameters.
      src: the source batch ``[B, ...]``.
      max_len: the most tokens generated after ``<bos>``.

    Returns:
      A :class:`Decoded`.

    Example:
      >>> out = greedy(step_fns(model), variables["params"], src_BxS, max_len=20)
      >>> strip(out.tokens, out.lengths)  # [[5, 9, 4], [7], ...]
    """
    check_max_len(max_len)
    return _greedy(fns, params, src, max_len)


@functools.partial(jax.jit, static_argnames=("fns", "max_len", "top_k"))
def _sample(fns, params, src, key, max_len, temperature, top_k):
    def choose(logits, t):
        k = jax.random.fold_in(key, t)
        # shifted so that a tiny τ sends the others to -inf, never the best to +inf; τ = 0
        # takes the argmax below, the guard only keeps the unused branch free of NaN
        z = logits.astype(jnp.float32)
        scaled = (z - jnp.max(z, axis=-1, keepdims=True)) / jnp.maximum(temperature, 1e-30)
        if top_k is None:
            drawn = jax.random.categorical(k, scaled, axis=-1)
        else:
            values, index = jax.lax.top_k(scaled, top_k)
            which = jax.random.categorical(k, values, axis=-1)
            drawn = jnp.take_along_axis(index, which[:, None], axis=1)[:, 0]
        return jnp.where(temperature > 0, drawn, jnp.argmax(logits, axis=-1))

    return _decode(fns, params, src, max_len, choose)


def sample(
    fns: StepFns,
    params,
    src,
    key: jax.Array,
    max_len: int,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> Decoded:
    """Ancestral sampling with a temperature and an optional top-k cut:

        y_t ~ softmax(z_t / τ) restricted to the k largest logits,   τ = 0: greedy.

    ``log_prob`` is the model's (untempered, uncut) log-probability of the drawn tokens. The
    temperature is traced (no recompilation per value); ``top_k`` is static.

    Args:
      fns, params, src, max_len: as in :func:`greedy`.
      key: PRNG key; step ``t`` draws with ``fold_in(key, t)``.
      temperature: τ >= 0.
      top_k: sample among the ``top_k`` most likely tokens only (None: all).

    Example:
      >>> out = sample(fns, params, src, jax.random.PRNGKey(0), 20, temperature=0.8, top_k=5)
    """
    check_max_len(max_len)
    if isinstance(temperature, (int, float)) and temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy); got {temperature}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive int or None; got {top_k!r}")
    return _sample(fns, params, src, key, max_len, temperature, top_k)


# --- ensembles -----------------------------------------------------------------------------
# Small frozen dataclasses rather than closures, so that ensemble(fs) == ensemble(fs): the
# compiled decoders' cache (fns is static) then hits for a rebuilt ensemble of the same members.


@dataclasses.dataclass(frozen=True)
class _Encode:
    members: tuple[StepFns, ...]

    def __call__(self, params, src):
        return tuple(f.encode(p, src) for f, p in zip(self.members, params, strict=True))


@dataclasses.dataclass(frozen=True)
class _InitCarry:
    members: tuple[StepFns, ...]

    def __call__(self, params, memory):
        return tuple(
            f.init_carry(p, m) for f, p, m in zip(self.members, params, memory, strict=True)
        )


@dataclasses.dataclass(frozen=True)
class _Step:
    members: tuple[StepFns, ...]

    def __call__(self, params, memory, carry, token_B):
        outs = [
            f.step(p, m, c, token_B)
            for f, p, m, c in zip(self.members, params, memory, carry, strict=True)
        ]
        logps = [jax.nn.log_softmax(o[1].astype(jnp.float32), axis=-1) for o in outs]
        if len({lp.shape for lp in logps}) != 1:
            raise ValueError(
                f"ensemble members must share a vocabulary; got logits {[lp.shape for lp in logps]}"
            )
        return tuple(o[0] for o in outs), sum(logps) / len(logps), _mean_aux([o[2] for o in outs])


def _mean_aux(auxes: list[dict]) -> dict:
    """The aux entries every member has with one shape (e.g. attention), averaged."""
    shared = {}
    for name, first in auxes[0].items():
        same = all(name in a and a[name].shape == first.shape for a in auxes)
        if same:
            shared[name] = sum(a[name] for a in auxes) / len(auxes)
    return shared


def ensemble(fns_list: Sequence[StepFns]) -> StepFns:
    """One decoder from N models sharing a vocabulary: at every step the members'
    log-probabilities are averaged (Sutskever et al., 2014),

        z_t = (1/N) Σ_n log p_n(· | y_{<t}, x),

    and ``z_t`` is returned as the logits (the decoders' ``log_softmax`` then normalises the
    geometric mean of the members' distributions). ``params``, ``memory`` and ``carry`` are
    tuples of the members'; aux entries every member has with one shape are averaged, others
    are dropped. Members may be different architectures.

    Example:
      >>> both = ensemble([step_fns(model_a), step_fns(model_b)])
      >>> out = beam_search(both, (params_a, params_b), src, beam=4, max_len=20)
    """
    members = tuple(fns_list)
    if not members or not all(isinstance(f, StepFns) for f in members):
        raise ValueError(f"ensemble needs a non-empty list of StepFns; got {fns_list!r}")
    return StepFns(_Encode(members), _InitCarry(members), _Step(members))


def strip(tokens, lengths) -> list:
    """Decoded ids as Python lists without ``<eos>`` and padding.

    Args:
      tokens: ``[..., T]`` (e.g. ``Decoded.tokens`` ``[B, T]`` or ``Beams.tokens`` ``[B, K, T]``).
      lengths: ``[...]`` tokens to keep, ``<eos>`` included.

    Returns:
      Nested lists of ints, one level per leading axis.
    """
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    if tokens.shape[:-1] != lengths.shape:
        raise ValueError(f"strip: tokens [..., T] {tokens.shape} vs lengths {lengths.shape}")
    if lengths.ndim > 0:
        return [strip(t, n) for t, n in zip(tokens, lengths, strict=True)]
    row = tokens[: int(lengths)].tolist()
    return row[:-1] if row and row[-1] == EOS else row
