"""word2vec's pieces as pure functions (Mikolov et al. 2013a, 2013b; word2vec.c).

Words have input vectors ``u_w`` and output vectors ``v_w``. Both models score a word
``o`` against a hidden vector ``h`` by ``s = h . v_o`` and learn by *negative sampling*:
``o`` is a true neighbour, ``n_1..n_k`` are noise words, and the loss is

    L = -log sigmoid(h . v_o) - sum_j log sigmoid(-h . v_{n_j}).

- skip-gram: ``h = u_c`` of the centre word ``c``; one term per (centre, context) pair,
  each pair with its own k noise words.
- CBOW: ``h`` = the mean of the context words' ``u``; one term per centre word ``o = c``.

Noise words come from the unigram distribution raised to 3/4,
``P_n(w) = count_w^0.75 / sum_w' count_w'^0.75``, sampled as uniform slots of a table in
which word ``w`` fills ``round(T P_n(w))`` slots (:func:`noise_table`); a noise word equal
to the positive word is ignored (word2vec.c skips it).

Frequent words are *subsampled*: each occurrence of ``w`` (relative frequency ``f_w``) is
kept with word2vec.c's probability ``min(1, sqrt(t / f_w) + t / f_w)``
(:func:`keep_probability`; the paper's ``1 - sqrt(t / f_w)`` is the discard probability
without the ``t / f_w`` term).

The window is *dynamic*: each centre word draws ``b`` uniformly in ``1..window`` and uses
the neighbours within ``b`` kept words on each side, so a neighbour at distance ``d`` is
used with probability ``(window - d + 1) / window`` (:func:`sample_contexts`).
"""

import jax
import jax.numpy as jnp
import numpy as np

NOISE_POWER = 0.75


def noise_distribution(counts_V: np.ndarray, power: float = NOISE_POWER) -> np.ndarray:
    """``P_n(w) = count_w^power / sum_w' count_w'^power`` as float64 ``[V]``."""
    weights_V = np.asarray(counts_V, np.float64) ** power
    return weights_V / weights_V.sum()


def noise_table(counts_V: np.ndarray, size: int, power: float = NOISE_POWER) -> np.ndarray:
    """A table of ``size`` word ids in which word ``w`` fills ``n_w`` slots, ``n_w`` the
    largest-remainder rounding of ``size P_n(w)``: ``|n_w - size P_n(w)| < 1`` and
    ``sum_w n_w = size``. A uniform slot is then a draw from ``P_n`` up to that rounding.

    Args:
      counts_V: training counts of the ``V`` words.
      size: table length ``T`` (word2vec.c uses 1e8; ``T >> V`` keeps the rounding small).
      power: the exponent (3/4).

    Returns:
      int32 ``[T]``, sorted by word id.

    Example:
      >>> noise_table(np.array([16, 1]), 10)   # P_n = (8, 1) / 9
      array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1], dtype=int32)
    """
    quota_V = size * noise_distribution(counts_V, power)
    slots_V = np.floor(quota_V).astype(np.int64)
    short = size - int(slots_V.sum())
    # the `short` largest fractional parts get one more slot (ties: the lower id first)
    order = np.argsort(-(quota_V - slots_V), kind="stable")
    slots_V[order[:short]] += 1
    return np.repeat(np.arange(len(slots_V), dtype=np.int32), slots_V)


def keep_probability(counts_V: np.ndarray, threshold: float) -> np.ndarray:
    """word2vec.c's subsampling keep probability ``min(1, sqrt(t / f) + t / f)``, float64.

    Args:
      counts_V: training counts; ``f_w = count_w / sum(counts)``.
      threshold: ``t`` (1e-3 in word2vec.c, 1e-5 in the paper); 0 keeps every word.

    Example:
      >>> keep_probability(np.array([99, 1]), 0.01)   # f = (0.99, 0.01)
      array([0.11060606, 1.        ])
    """
    if threshold == 0:
        return np.ones(len(counts_V))
    ratio_V = threshold / (np.asarray(counts_V, np.float64) / np.sum(counts_V))
    return np.minimum(1.0, np.sqrt(ratio_V) + ratio_V)


def split_rows(x_BxW: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Centre ids ``[B]`` and context ids ``[B, 2C]`` of rows ``[B, 2C + 1]``, the contexts
    ordered ``(left 1..C, right 1..C)``: nearest first on each side."""
    c = x_BxW.shape[1] // 2
    left_BxC = x_BxW[:, :c][:, ::-1]
    return x_BxW[:, c], jnp.concatenate([left_BxC, x_BxW[:, c + 1 :]], axis=1)


def sample_contexts(
    key: jax.Array, x_BxW: jax.Array, keep_V: jax.Array, window: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Subsamples the rows' words and draws each centre's dynamic window.

    Each word of each row is kept with probability ``keep_V[word]`` (drawn per row: a
    token shared by overlapping rows is kept or dropped independently in each; per pair
    the probability is word2vec.c's). A dropped word neither is a centre nor a context,
    and distances count kept words only, as word2vec.c deletes dropped words before
    windowing; the rows' ``C`` stored neighbours per side bound how far that reaches.

    Args:
      key: PRNG key.
      x_BxW: rows ``[B, 2C + 1]`` of word ids, ``-1`` = padding.
      keep_V: keep probability per word ``[V]`` (all ones: no subsampling).
      window: the largest window ``W <= C``; ``b ~ U{1..W}`` per centre.

    Returns:
      ``(centre_B, context_BxS, use_BxS)`` with ``S = 2C``: ``use`` marks the contexts of
      a kept centre that are kept, real and within ``b`` kept words of it.
    """
    k_keep, k_window = jax.random.split(key)
    centre_B, context_BxS = split_rows(x_BxW)
    c = context_BxS.shape[1] // 2
    keep_centre_B, keep_ctx_BxS = jnp.split(
        jax.random.uniform(k_keep, (x_BxW.shape[0], 2 * c + 1)), [1], axis=1
    )
    kept_B = keep_centre_B[:, 0] < keep_V[centre_B]
    kept_BxS = (context_BxS >= 0) & (keep_ctx_BxS < keep_V[jnp.maximum(context_BxS, 0)])
    b_Bx1 = jax.random.randint(k_window, (x_BxW.shape[0], 1), 1, window + 1)
    # distance in kept words, per side: the running count of kept words from the centre out
    dist_BxS = jnp.concatenate(
        [jnp.cumsum(side, axis=1) for side in jnp.split(kept_BxS.astype(jnp.int32), 2, axis=1)],
        axis=1,
    )
    return centre_B, context_BxS, kept_B[:, None] & kept_BxS & (dist_BxS <= b_Bx1)


def all_contexts(x_BxW: jax.Array, window: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Like :func:`sample_contexts` without randomness: every real neighbour within
    ``window`` (held-out losses use this fixed set of pairs)."""
    centre_B, context_BxS = split_rows(x_BxW)
    c = context_BxS.shape[1] // 2
    distance_S = jnp.concatenate([jnp.arange(1, c + 1)] * 2)
    return centre_B, context_BxS, (context_BxS >= 0) & (distance_S[None, :] <= window)


def negative_sampling_loss(
    h_NxD: jax.Array, v_pos_NxD: jax.Array, v_neg_NxKxD: jax.Array, neg_use_NxK: jax.Array
) -> jax.Array:
    """``-log sigmoid(h . v_o) - sum_j use_j log sigmoid(-h . v_{n_j})`` per row, ``[N]``."""
    pos_N = jnp.sum(h_NxD * v_pos_NxD, axis=-1)
    neg_NxK = jnp.einsum("nd,nkd->nk", h_NxD, v_neg_NxKxD)
    return -jax.nn.log_sigmoid(pos_N) - jnp.sum(
        jnp.where(neg_use_NxK, jax.nn.log_sigmoid(-neg_NxK), 0.0), axis=-1
    )


def skipgram_loss(
    params: dict, centre_B: jax.Array, context_BxS: jax.Array, use_BxS: jax.Array, neg_BxSxK
) -> tuple[jax.Array, jax.Array]:
    """Skip-gram with negative sampling: ``(sum of pair losses, number of pairs)``.

    Args:
      params: ``{"input": u [V, D], "output": v [V, D]}``.
      centre_B, context_BxS, use_BxS: from :func:`sample_contexts`.
      neg_BxSxK: noise word ids, ``k`` per pair.
    """
    safe_BxS = jnp.maximum(context_BxS, 0)
    b, s = context_BxS.shape
    h_BxSxD = jnp.broadcast_to(
        params["input"][centre_B][:, None, :], (b, s, params["input"].shape[1])
    )
    loss = negative_sampling_loss(
        h_BxSxD.reshape(b * s, -1),
        params["output"][safe_BxS].reshape(b * s, -1),
        params["output"][neg_BxSxK].reshape(b * s, neg_BxSxK.shape[2], -1),
        (neg_BxSxK != safe_BxS[:, :, None]).reshape(b * s, -1),
    )
    use = use_BxS.reshape(-1).astype(loss.dtype)
    return jnp.sum(loss * use), jnp.sum(use)


def cbow_loss(
    params: dict, centre_B: jax.Array, context_BxS: jax.Array, use_BxS: jax.Array, neg_BxK
) -> tuple[jax.Array, jax.Array]:
    """CBOW with negative sampling: ``(sum of centre losses, number of centres)``; the
    hidden vector is the mean ``u`` of the used contexts, centres without one are skipped.

    Args:
      params: ``{"input": u [V, D], "output": v [V, D]}``.
      centre_B, context_BxS, use_BxS: from :func:`sample_contexts`.
      neg_BxK: noise word ids, ``k`` per centre.
    """
    weight_BxS = use_BxS.astype(params["input"].dtype)
    n_B = jnp.sum(weight_BxS, axis=1)
    u_BxSxD = params["input"][jnp.maximum(context_BxS, 0)]
    h_BxD = jnp.einsum("bs,bsd->bd", weight_BxS, u_BxSxD) / jnp.maximum(n_B, 1.0)[:, None]
    loss_B = negative_sampling_loss(
        h_BxD, params["output"][centre_B], params["output"][neg_BxK], neg_BxK != centre_B[:, None]
    )
    has_B = (n_B > 0).astype(loss_B.dtype)
    return jnp.sum(loss_B * has_B), jnp.sum(has_B)


def init_embeddings(key: jax.Array, vocab_size: int, dim: int) -> dict:
    """word2vec.c's start: ``u ~ U(-0.5 / D, 0.5 / D)``, ``v = 0``."""
    bound = 0.5 / dim
    return {
        "input": jax.random.uniform(key, (vocab_size, dim), jnp.float32, -bound, bound),
        "output": jnp.zeros((vocab_size, dim), jnp.float32),
    }
