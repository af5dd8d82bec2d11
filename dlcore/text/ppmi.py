"""The count-based baseline: PPMI of windowed co-occurrence counts, then truncated SVD (LSA).

Counts come from the same context rows and window that word2vec trains on, each pair
weighted by the probability that word2vec's dynamic window uses it,

    n(w, c) = sum over occurrences of w, neighbours c at distance d <= W of (W - d + 1) / W,

so ``n`` is what skip-gram sees in expectation without subsampling (Levy et al. 2015,
"dynamic context windows"). With ``N = sum n``, ``n(w) = sum_c n(w, c)`` and context
distribution smoothing ``alpha`` (0.75, as in the noise distribution),

    PMI(w, c) = log( n(w, c) N_alpha / (n(w) n(c)^alpha) ),   N_alpha = sum_c n(c)^alpha,

    PPMI = max(PMI, 0)  (0 where n(w, c) = 0),

and the word vectors are ``U_d sqrt(S_d)`` of the rank-``d`` truncated SVD
``PPMI ~ U_d S_d V_d^T`` (the symmetric weighting, eigenvalue power 1/2).
"""

import numpy as np


def cooccurrence(x_NxW: np.ndarray, window: int, vocab_size: int) -> np.ndarray:
    """Dynamic-window-weighted counts ``n(w, c)`` ``[V, V]`` (float64) of rows
    ``[N, 2C + 1]`` (centre in the middle, ``-1`` padding); symmetric, since every pair
    is seen from both of its words."""
    x_NxW = np.asarray(x_NxW)
    c = x_NxW.shape[1] // 2
    centre_N = x_NxW[:, c].astype(np.int64)
    flat = np.zeros(vocab_size * vocab_size)
    for d in range(1, min(window, c) + 1):
        for ctx_N in (x_NxW[:, c - d], x_NxW[:, c + d]):
            real = ctx_N >= 0
            index = centre_N[real] * vocab_size + ctx_N[real]
            flat += np.bincount(index, minlength=vocab_size**2) * ((window - d + 1) / window)
    return flat.reshape(vocab_size, vocab_size)


def ppmi(counts_VxV: np.ndarray, alpha: float = 0.75) -> np.ndarray:
    """Positive PMI with context distribution smoothing (module docstring), float64."""
    counts_VxV = np.asarray(counts_VxV, np.float64)
    word_V = counts_VxV.sum(axis=1)
    ctx_alpha_V = counts_VxV.sum(axis=0) ** alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(counts_VxV * ctx_alpha_V.sum() / (word_V[:, None] * ctx_alpha_V[None, :]))
    return np.where(counts_VxV > 0, np.maximum(pmi, 0.0), 0.0)


def svd_embeddings(matrix_VxV: np.ndarray, dim: int, seed: int = 0) -> np.ndarray:
    """``U_d sqrt(S_d)`` ``[V, d]`` of a randomized truncated SVD (Halko et al.; seeded,
    so deterministic)."""
    from sklearn.utils.extmath import randomized_svd

    dim = min(dim, min(matrix_VxV.shape) - 1)
    u_VxD, s_D, _ = randomized_svd(matrix_VxV, dim, n_iter=5, random_state=seed)
    return u_VxD * np.sqrt(s_D)[None, :]
