"""Restricted Boltzmann machines as pure functions: energy, free energy, conditionals, Gibbs
sampling, the contrastive-divergence gradient and the pseudo-log-likelihood.

Visible units v in R^V, hidden units h in {0, 1}^H, weights W [V, H], visible bias b [V],
hidden bias c [H]. Bernoulli visible units (v in {0, 1}^V):

    E(v, h) = -b.v - c.h - v W h
    F(v)    = -log sum_h exp(-E(v, h)) = -b.v - sum_j softplus(c_j + (v W)_j)
    p(h_j = 1 | v) = sigmoid(c_j + (v W)_j),    p(v_i = 1 | h) = sigmoid(b_i + (W h)_i)

Gaussian visible units of unit variance (for standardized inputs, Hinton 2010 sec. 13.2):

    E(v, h) = ||v - b||^2 / 2 - c.h - v W h
    F(v)    = ||v - b||^2 / 2 - sum_j softplus(c_j + (v W)_j)
    p(v | h) = N(b + W h, I),   p(h | v) as above

The log-likelihood gradient is <-dF/dtheta>_data - <-dF/dtheta>_model for both kinds; with
the hidden units summed out (their probabilities, not samples, in the statistics):

    dlogp/dW = <v p(h|v)^T>_data - <v p(h|v)^T>_model
    dlogp/db = <v>_data - <v>_model,   dlogp/dc = <p(h|v)>_data - <p(h|v)>_model

CD-k (Hinton 2002) estimates the model term with k Gibbs steps started at the data; PCD
(Tieleman 2008, scikit-learn's ``BernoulliRBM``) continues persistent chains from the last
update. A chain's state is its hidden sample h; one Gibbs step is

    v ~ p(v | h),   q = p(h | v),   h' ~ Bernoulli(q)

and the negative statistics use the last step's v and q. Randomness comes in as explicit
noise arrays (uniforms for Bernoulli units, standard normals for Gaussian visible units;
a unit is on where u < p), so a test can replay an update in NumPy with the same numbers.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

VISIBLE_UNITS = ("bernoulli", "gaussian")


class RBMParams(NamedTuple):
    """One RBM's parameters: ``w`` [V, H], visible bias ``b`` [V], hidden bias ``c`` [H]."""

    w: jax.Array
    b: jax.Array
    c: jax.Array


class ChainNoise(NamedTuple):
    """The randomness of one CD-k / PCD-k update of C chains.

    Attributes:
      h0: uniforms [C, H] that sample the data's hidden units (CD's chain start).
      v: per step, the visible noise [k, C, V] (uniforms, or normals for Gaussian units).
      h: per step, uniforms [k, C, H] for the hidden samples.
    """

    h0: jax.Array
    v: jax.Array
    h: jax.Array


def hidden_probs(p: RBMParams, v_BxV: jax.Array) -> jax.Array:
    """p(h = 1 | v) = sigmoid(v W + c), ``[B, H]``."""
    return jax.nn.sigmoid(v_BxV @ p.w + p.c[None, :])


def visible_mean(p: RBMParams, h_BxH: jax.Array, visible: str = "bernoulli") -> jax.Array:
    """E[v | h]: sigmoid(h W^T + b) for Bernoulli units, h W^T + b for Gaussian, ``[B, V]``."""
    a_BxV = h_BxH @ p.w.T + p.b[None, :]
    return jax.nn.sigmoid(a_BxV) if visible == "bernoulli" else a_BxV


def energy(p: RBMParams, v_BxV: jax.Array, h_BxH: jax.Array, visible: str = "bernoulli"):
    """E(v, h) per example ``[B]`` (module docstring)."""
    interaction_B = jnp.sum((v_BxV @ p.w) * h_BxH, axis=1) + h_BxH @ p.c
    if visible == "bernoulli":
        return -(v_BxV @ p.b) - interaction_B
    return 0.5 * jnp.sum((v_BxV - p.b[None, :]) ** 2, axis=1) - interaction_B


def free_energy(p: RBMParams, v_BxV: jax.Array, visible: str = "bernoulli") -> jax.Array:
    """F(v) = -log sum_h exp(-E(v, h)) per example ``[B]`` (module docstring).

    Example:
      >>> free_energy(params, v_BxV).mean()   # lower on data the model likes
    """
    hidden_B = jnp.sum(jax.nn.softplus(v_BxV @ p.w + p.c[None, :]), axis=1)
    if visible == "bernoulli":
        return -(v_BxV @ p.b) - hidden_B
    return 0.5 * jnp.sum((v_BxV - p.b[None, :]) ** 2, axis=1) - hidden_B


def sample(probs: jax.Array, uniforms: jax.Array) -> jax.Array:
    """Bernoulli(probs) as 0/1 in ``probs``' dtype: 1 where u < p."""
    return (uniforms < probs).astype(probs.dtype)


def sample_visible(p: RBMParams, h_BxH: jax.Array, noise_BxV: jax.Array, visible: str):
    """v ~ p(v | h): Bernoulli from uniforms, or the Gaussian mean plus standard normals."""
    mean_BxV = visible_mean(p, h_BxH, visible)
    return sample(mean_BxV, noise_BxV) if visible == "bernoulli" else mean_BxV + noise_BxV


def gibbs_step(p: RBMParams, h_BxH, noise_v_BxV, uniforms_h_BxH, visible: str = "bernoulli"):
    """One step h -> v ~ p(v|h) -> q = p(h|v) -> h' ~ Bernoulli(q).

    Returns:
      ``(v, q, h')``: ``[B, V]``, ``[B, H]``, ``[B, H]``.
    """
    v_BxV = sample_visible(p, h_BxH, noise_v_BxV, visible)
    q_BxH = hidden_probs(p, v_BxV)
    return v_BxV, q_BxH, sample(q_BxH, uniforms_h_BxH)


def draw_noise(key, k: int, chains: int, p: RBMParams, visible: str = "bernoulli"):
    """The :class:`ChainNoise` of one update: k steps of ``chains`` chains, in ``p``'s dtype."""
    (v_dim, h_dim), dtype = p.w.shape, p.w.dtype
    k_h0, k_v, k_h = jax.random.split(key, 3)
    if visible == "bernoulli":
        noise_v = jax.random.uniform(k_v, (k, chains, v_dim), dtype)
    else:
        noise_v = jax.random.normal(k_v, (k, chains, v_dim), dtype)
    return ChainNoise(
        jax.random.uniform(k_h0, (chains, h_dim), dtype),
        noise_v,
        jax.random.uniform(k_h, (k, chains, h_dim), dtype),
    )


def run_chain(p: RBMParams, h_CxH, noise_v_KxCxV, uniforms_h_KxCxH, visible: str = "bernoulli"):
    """k Gibbs steps from the hidden states ``h`` (a ``lax.scan``; k = the noise's length).

    Returns:
      ``(v_k, q_k, h_k)`` of the last step (:func:`gibbs_step`).
    """

    def step(carry, noise):
        _, _, h = carry
        return gibbs_step(p, h, *noise, visible), None

    dtype = p.w.dtype
    start = (jnp.zeros(noise_v_KxCxV.shape[1:], dtype), jnp.zeros_like(h_CxH, dtype), h_CxH)
    (v, q, h), _ = jax.lax.scan(step, start, (noise_v_KxCxV, uniforms_h_KxCxH))
    return v, q, h


def _weighted_mean(x_NxD: jax.Array, weights_N: jax.Array | None) -> jax.Array:
    """sum_n w_n x_n / sum_n w_n, ``[D]`` (w = 1 when None)."""
    if weights_N is None:
        return jnp.mean(x_NxD, axis=0)
    weights_N = weights_N.astype(x_NxD.dtype)
    return weights_N @ x_NxD / jnp.maximum(jnp.sum(weights_N), 1e-12)


def _weighted_outer(v_NxV: jax.Array, q_NxH: jax.Array, weights_N: jax.Array | None):
    """sum_n w_n v_n q_n^T / sum_n w_n, ``[V, H]`` (w = 1 when None)."""
    if weights_N is None:
        return v_NxV.T @ q_NxH / v_NxV.shape[0]
    weights_N = weights_N.astype(v_NxV.dtype)
    return (v_NxV * weights_N[:, None]).T @ q_NxH / jnp.maximum(jnp.sum(weights_N), 1e-12)


def cd_gradient(
    v_pos_BxV: jax.Array,
    q_pos_BxH: jax.Array,
    v_neg_CxV: jax.Array,
    q_neg_CxH: jax.Array,
    weights_B: jax.Array | None = None,
    weights_C: jax.Array | None = None,
) -> RBMParams:
    """The CD / PCD update as a gradient to descend: minus (positive - negative statistics).

    With data means <.>_+ (weighted by ``weights_B``, e.g. a batch's mask) and chain means
    <.>_- (weighted by ``weights_C``; module docstring):

        g_W = -(<v q^T>_+ - <v q^T>_-),   g_b = -(<v>_+ - <v>_-),   g_c = -(<q>_+ - <q>_-)

    which equals the gradient of mean F(v_data) - mean F(v_chains) with the chains held
    fixed, for Bernoulli and Gaussian visible units alike. An optax chain fed this ``g``
    ascends the log-likelihood estimate (``sgd``: theta <- theta + lr (pos - neg)).

    Args:
      v_pos_BxV: the data.
      q_pos_BxH: p(h | v_data).
      v_neg_CxV: the chains' visible states after the last Gibbs step.
      q_neg_CxH: p(h | v_neg).
      weights_B: per-example weights of the data (None: all 1).
      weights_C: per-chain weights (None: all 1); CD's chains start at the batch's rows,
        so it passes the batch's mask here too.

    Returns:
      :class:`RBMParams` of gradients.
    """
    return RBMParams(
        w=-(
            _weighted_outer(v_pos_BxV, q_pos_BxH, weights_B)
            - _weighted_outer(v_neg_CxV, q_neg_CxH, weights_C)
        ),
        b=-(_weighted_mean(v_pos_BxV, weights_B) - _weighted_mean(v_neg_CxV, weights_C)),
        c=-(_weighted_mean(q_pos_BxH, weights_B) - _weighted_mean(q_neg_CxH, weights_C)),
    )


def reconstruct(p: RBMParams, v_BxV: jax.Array, visible: str = "bernoulli") -> jax.Array:
    """The mean-field reconstruction E[v | h = p(h | v)] (no sampling), ``[B, V]``."""
    return visible_mean(p, hidden_probs(p, v_BxV), visible)


def flip_gaps(p: RBMParams, v_BxV: jax.Array) -> jax.Array:
    """F(v with bit i flipped) - F(v) for every bit i, ``[B, V]`` (Bernoulli units).

    With a = v W + c and d_i = 1 - 2 v_i (+1 turns a bit on, -1 off):

        F(v^i) - F(v) = -b_i d_i - sum_j [softplus(a_j + d_i W_ij) - softplus(a_j)]

    Memory is B V H numbers; callers with large batches evaluate them in chunks.
    """
    a_BxH = v_BxV @ p.w + p.c[None, :]
    d_BxV = 1.0 - 2.0 * v_BxV
    flipped_BxVxH = a_BxH[:, None, :] + d_BxV[:, :, None] * p.w[None, :, :]
    hidden_BxV = jnp.sum(jax.nn.softplus(flipped_BxVxH) - jax.nn.softplus(a_BxH)[:, None, :], 2)
    return -p.b[None, :] * d_BxV - hidden_BxV


def pseudo_log_likelihood(p: RBMParams, v_BxV: jax.Array) -> jax.Array:
    """The exact pseudo-log-likelihood of binary v, summed over ALL V bits, ``[B]``:

        PLL(v) = sum_i log p(v_i | v_-i) = sum_i log sigmoid(F(v^i) - F(v))

    (v^i: v with bit i flipped). Example:
      >>> pseudo_log_likelihood(params, v_BxV).mean()   # nats per image; 0 is perfect
    """
    return jnp.sum(jax.nn.log_sigmoid(flip_gaps(p, v_BxV)), axis=1)


def one_bit_pll(p: RBMParams, v_BxV: jax.Array, key: jax.Array) -> jax.Array:
    """scikit-learn's stochastic estimate (``BernoulliRBM.score_samples``), ``[B]``:
    V log sigmoid(F(v^i) - F(v)) for ONE bit i drawn uniformly per example, an unbiased
    estimate of :func:`pseudo_log_likelihood`."""
    batch, dim = v_BxV.shape
    bits_B = jax.random.randint(key, (batch,), 0, dim)
    flip_BxV = jax.nn.one_hot(bits_B, dim, dtype=v_BxV.dtype)
    v_flipped = v_BxV + flip_BxV * (1.0 - 2.0 * v_BxV)
    gap_B = free_energy(p, v_flipped) - free_energy(p, v_BxV)
    return dim * jax.nn.log_sigmoid(gap_B)


def sample_chains(
    p: RBMParams, h_CxH: jax.Array, key: jax.Array, steps: int, visible: str = "bernoulli"
):
    """Runs ``steps`` Gibbs steps (a compiled ``fori_loop``; noise drawn step by step).

    Returns:
      ``(q, h)``: the last p(h | v) ``[C, H]`` and hidden sample; E[v | h] of the final
      state is ``visible_mean(p, h)``.
    """

    def body(t, carry):
        _, h = carry
        noise = draw_noise(jax.random.fold_in(key, t), 1, h.shape[0], p, visible)
        _, q, h = gibbs_step(p, h, noise.v[0], noise.h[0], visible)
        return q, h

    return jax.lax.fori_loop(0, steps, body, (jnp.zeros_like(h_CxH), h_CxH))
