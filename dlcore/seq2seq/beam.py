"""Compiled, batched beam search over any :class:`~dlcore.seq2seq.protocol.StepFns`.

Each example keeps ``K`` live hypotheses and a separate set of the ``K`` best finished ones.
Hypotheses are ranked by GNMT's length-normalised score (Wu et al., 2016)::

    score(y) = log P(y | x) / lp(|y|),    lp(n) = ((5 + n) / 6)^α    (α = 0: raw log-prob)

where ``|y|`` counts the tokens up to and including ``<eos>``. At step ``t`` every live
hypothesis is extended by every token (``K·V`` candidates by log-probability). Those of the
top ``K`` that end in ``<eos>`` join the finished set, which keeps its best ``K`` by score
(only top-``K`` ones may finish, so ``K = 1`` is exactly greedy decoding); the best ``K``
that do not end in ``<eos>`` become the live set. At ``max_len`` every candidate of the top
``K`` finishes. The search stops early for an example once its finished set is full and no
live hypothesis can still beat the worst finished one:

    max_k log P(y_k) / lp(max_len) <= min finished score

(log-probabilities only decrease as a hypothesis grows, so for α = 0 the bound is exact).

Memory and carry are tiled to ``[B·K, ...]`` (row ``b·K + k``); the carry is reordered by
gathering rows of the parents, the memory never changes.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dlcore.seq2seq.decode import aux_history, batch_size, check_max_len, keep_where, write_step
from dlcore.seq2seq.protocol import BOS, EOS, PAD, StepFns


class Beams(NamedTuple):
    """The ``K`` best finished hypotheses per example, best first.

    Attributes:
      tokens: ``[B, K, max_len]`` int32, tokens after ``<bos>``, ``<eos>`` included, then PAD.
      lengths: ``[B, K]`` tokens up to and including ``<eos>`` (``max_len`` if cut there;
        0 for an empty slot, when fewer than ``K`` sequences exist).
      scores: ``[B, K]`` the length-normalised score used for ranking (``-inf``: empty slot).
      log_probs: ``[B, K]`` ``log P(tokens | src)``.
      aux: the step's aux of every hypothesis, each leaf ``[B, K, max_len, ...]``.
      steps: decoding steps run (< ``max_len`` after an early stop).
    """

    tokens: jax.Array
    lengths: jax.Array
    scores: jax.Array
    log_probs: jax.Array
    aux: Any
    steps: jax.Array


def length_penalty(length, alpha):
    """GNMT's ``lp(n) = ((5 + n) / 6)^α``."""
    return ((5.0 + length) / 6.0) ** alpha


class _Set(NamedTuple):
    """A set of K hypotheses per example (live or finished); leaves ``[B, K, ...]``."""

    tokens: jax.Array  # [B, K, max_len]
    log_probs: jax.Array  # [B, K]
    scores: jax.Array  # [B, K]
    lengths: jax.Array  # [B, K]
    aux: Any  # leaves [B, K, max_len, ...]


def _gather(tree, index_BxK):
    """``leaf[b, index[b, k]]`` for every leaf ``[B, K', ...]``."""
    return jax.tree.map(lambda leaf: jax.vmap(lambda x, i: x[i])(leaf, index_BxK), tree)


def _beam_search(fns: StepFns, params, src, beam: int, max_len: int, alpha) -> Beams:
    K = beam
    memory = fns.encode(params, src)
    carry = fns.init_carry(params, memory)
    B = batch_size(src)
    memory = jax.tree.map(lambda x: jnp.repeat(x, K, axis=0), memory)  # row b*K + k
    carry = jax.tree.map(lambda x: jnp.repeat(x, K, axis=0), carry)
    aux0, logits_shape = aux_history(fns, params, memory, carry, B * K, (B, K), max_len)
    V = logits_shape.shape[-1]
    dtype = jnp.promote_types(logits_shape.dtype, jnp.float32)
    ninf = jnp.array(-jnp.inf, dtype)
    alpha = jnp.asarray(alpha, dtype)

    # only the first copy of the start state is live, so step 0 expands it once
    first = jnp.zeros((B, K), dtype).at[:, 1:].set(ninf)
    tokens0 = jnp.full((B, K, max_len), PAD, jnp.int32)
    lengths0 = jnp.zeros((B, K), jnp.int32)
    live = _Set(tokens0, first, first, lengths0, aux0)
    empty = jnp.full((B, K), ninf)
    finished = _Set(tokens0, empty, empty, lengths0, aux0)

    class State(NamedTuple):
        t: jax.Array
        carry: Any
        live: _Set
        finished: _Set
        done: jax.Array  # [B] this example's finished set can no longer change

    def cond(s: State):
        return (s.t < max_len) & ~jnp.all(s.done)

    def body(s: State) -> State:
        t, live = s.t, s.live
        last = jax.lax.dynamic_index_in_dim(live.tokens, jnp.maximum(t - 1, 0), 2, False)
        last = jnp.where(t == 0, BOS, last)
        carry, logits, aux = fns.step(params, memory, s.carry, last.reshape(B * K))
        logp = jax.nn.log_softmax(logits.astype(dtype), axis=-1).reshape(B, K, V)
        cand = live.log_probs[:, :, None] + logp  # [B, K, V]
        aux = jax.tree.map(lambda a: a.reshape(B, K, *a.shape[1:]), aux)

        def extend(flat_index, log_probs, lengths):
            parent, token = flat_index // V, flat_index % V
            tokens = write_step(_gather(live.tokens, parent), token, t, axis=2)
            history = jax.tree.map(
                lambda h, a: write_step(_gather(h, parent), _gather(a, parent), t, axis=2),
                live.aux,
                aux,
            )
            scores = log_probs / length_penalty(lengths.astype(dtype), alpha)
            return _Set(tokens, log_probs, scores, lengths, history), parent

        # those of the top K candidates that end in <eos> finish (every one at max_len)
        top, top_index = jax.lax.top_k(cand.reshape(B, K * V), K)
        finishing = ((top_index % V) == EOS) | (t == max_len - 1)
        lengths = jnp.full((B, K), t + 1, jnp.int32)
        new, _ = extend(top_index, jnp.where(finishing, top, ninf), lengths)
        pool = jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=1), s.finished, new)
        _, best = jax.lax.top_k(pool.scores, K)
        finished = keep_where(s.done, s.finished, _gather(pool, best))

        # the best K candidates that do not end in <eos> stay live
        no_eos = cand.at[:, :, EOS].set(ninf).reshape(B, K * V)
        live_lp, live_index = jax.lax.top_k(no_eos, K)
        live, parent = extend(live_index, live_lp, lengths)
        rows = (jnp.arange(B)[:, None] * K + parent).reshape(B * K)
        carry = jax.tree.map(lambda x: jnp.take(x, rows, axis=0), carry)

        bound = jnp.max(live.log_probs, axis=1) / length_penalty(jnp.asarray(max_len, dtype), alpha)
        worst = finished.scores[:, -1]
        hopeless = (bound == ninf) | ((worst > ninf) & (bound <= worst))
        return State(t + 1, carry, live, finished, s.done | hopeless)

    s = State(jnp.zeros((), jnp.int32), carry, live, finished, jnp.zeros((B,), bool))
    s = jax.lax.while_loop(cond, body, s)
    f = s.finished
    real = f.scores > ninf  # empty slots: only when fewer than K sequences exist at all
    tokens = jnp.where(real[:, :, None], f.tokens, PAD)
    return Beams(tokens, jnp.where(real, f.lengths, 0), f.scores, f.log_probs, f.aux, s.t)


_beam_search_jit = jax.jit(_beam_search, static_argnames=("fns", "beam", "max_len"))


def beam_search(fns: StepFns, params, src, beam: int, max_len: int, alpha: float = 0.0) -> Beams:
    """Beam search of width ``beam``, batched and compiled (see the module docstring).

    Args:
      fns: the model's step functions (static).
      params: their parameters.
      src: the source batch ``[B, ...]``.
      beam: K, the number of live and of finished hypotheses kept per example.
      max_len: the most tokens generated after ``<bos>``.
      alpha: length-normalisation exponent α >= 0 (traced: no recompilation per value).

    Returns:
      :class:`Beams`, best first; ``Beams.tokens[:, 0]`` is the answer.

    Example:
      >>> beams = beam_search(step_fns(model), variables["params"], src, beam=4, max_len=20,
      ...                     alpha=0.6)
      >>> strip(beams.tokens[:, 0], beams.lengths[:, 0])
    """
    check_max_len(max_len)
    if not isinstance(beam, int) or isinstance(beam, bool) or beam < 1:
        raise ValueError(f"beam must be a positive int; got {beam!r}")
    if isinstance(alpha, (int, float)) and alpha < 0:
        raise ValueError(f"alpha (length normalisation) must be >= 0; got {alpha}")
    return _beam_search_jit(fns, params, src, beam, max_len, alpha)
