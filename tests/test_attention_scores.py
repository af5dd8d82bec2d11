"""Attention scores, normalisers and masks against NumPy float64 formulas written out here.

The NumPy side computes each score pair by pair from its paper's formula (Luong's concat as a
literal concatenation [q; k]) and each normaliser over the kept keys only; sparsemax and
entmax-1.5 by bisection on their defining equation p_j = [(alpha - 1) z_j - tau]_+^(1/(alpha-1)),
independently of the sort-based algorithms under test.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.layers.attention import AdditiveAttention
from dlcore.layers.attention_scores import (
    NORMALISERS,
    SCORES,
    Attention,
    causal_mask,
    entmax15,
    normalise,
    padding_mask,
)

TOL = 1e-10
EPS = 1e-6  # central-difference step in float64
B, TQ, TK, DQ, DK, DV, A = 2, 3, 5, 3, 4, 2, 4
ALPHA = {"sparsemax": 2.0, "entmax15": 1.5}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


# ---- NumPy float64 references -------------------------------------------------------------


def np_score(name: str, q_i, k_j, p) -> float:
    if name in ("additive", "concat"):  # w^T tanh(W [q; k] + b), W = [Wq; Wk] stacked by rows
        W = np.concatenate([p["Wq"], p["Wk"]], axis=0)
        return float(np.tanh(np.concatenate([q_i, k_j]) @ W + p["b"]) @ p["w"])
    if name == "general":
        return float(q_i @ p["W"] @ k_j)
    scale = np.sqrt(len(q_i)) if name == "scaled_dot" else 1.0
    return float(q_i @ k_j / scale)


def np_entmax_bisect(z, alpha: float, keep=None) -> np.ndarray:
    """Solves sum_j [(alpha - 1) z_j - tau]_+^(1/(alpha-1)) = 1 for tau by bisection, over the
    last axis and only over the kept entries (rows with none kept give zeros)."""
    keep = np.ones(np.shape(z), bool) if keep is None else keep
    x = np.where(keep, (alpha - 1) * np.asarray(z, np.float64), -np.inf)
    hi = np.max(np.where(keep.any(-1, keepdims=True), x, 0.0), axis=-1, keepdims=True)
    lo = hi - 1.0  # the sum is >= 1 at lo (the max alone gives 1) and 0 at hi

    def total(tau):
        return np.sum(np.maximum(x - tau, 0) ** (1 / (alpha - 1)), axis=-1, keepdims=True)

    for _ in range(100):  # the bracket shrinks to adjacent float64s after ~55 halvings
        mid = (lo + hi) / 2
        above = total(mid) >= 1
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.where(keep, np.maximum(x - lo, 0) ** (1 / (alpha - 1)), 0.0)


def np_normalise(name: str, z, keep) -> np.ndarray:
    """The normaliser over the kept entries of the last axis, 0 elsewhere and in rows with
    none kept."""
    if name != "softmax":
        return np_entmax_bisect(z, ALPHA[name], keep)
    z_max = np.max(np.where(keep, z, -np.inf), axis=-1, keepdims=True)
    e = np.where(keep, np.exp(z - np.where(np.isfinite(z_max), z_max, 0.0)), 0.0)
    return e / np.maximum(np.sum(e, axis=-1, keepdims=True), 1e-300)


def np_attention(score, normaliser, p, q, k, v, keep_BxTqxTk):
    e = np.array([[[np_score(score, q[b, i], k[b, j], p) for j in range(TK)]
                   for i in range(TQ)] for b in range(B)])  # fmt: skip
    a = np_normalise(normaliser, e, keep_BxTqxTk)
    return np.einsum("bqk,bkd->bqd", a, v), a


# ---- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def case():
    """Scores spread enough for sparse supports of 1 to 4 keys; key 4 of row 1 is padding and
    the attention mask hides key 0 from query 2, so both masks are exercised."""
    rng = np.random.default_rng(0)
    params = {
        "W": rng.standard_normal((DQ, DK)),
        "Wq": rng.standard_normal((DQ, A)),
        "Wk": rng.standard_normal((DK, A)),
        "b": 0.3 * rng.standard_normal(A),
        "w": 2 * rng.standard_normal(A),
    }
    q = rng.standard_normal((B, TQ, DQ))
    k = rng.standard_normal((B, TK, DK))
    v = rng.standard_normal((B, TK, DV))
    key_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], bool)
    attn_mask = np.ones((TQ, TK), bool)
    attn_mask[2, 0] = False
    keep = key_mask[:, None, :] & attn_mask[None]
    return params, q, k, v, key_mask, attn_mask, keep


def module_params(score: str, params: dict) -> dict:
    names = {
        "general": ("W",),
        "additive": ("Wq", "Wk", "b", "w"),
        "concat": ("Wq", "Wk", "b", "w"),
    }
    return {n: params[n] for n in names.get(score, ())}


# ---- scores x normalisers through the module ----------------------------------------------


def tree_dot(a, b) -> float:
    return sum(
        float(np.sum(np.asarray(x) * y)) for x, y in zip(*map(jax.tree.leaves, (a, b)), strict=True)
    )


@pytest.mark.parametrize(("score", "normaliser"), list(itertools.product(SCORES, NORMALISERS)))
def test_module_matches_numpy_and_its_gradients_pass_finite_differences(case, score, normaliser):
    params, q, k, v, key_mask, attn_mask, keep = case
    if score in ("dot", "scaled_dot"):  # these need Dq = Dk: use the first DQ key features
        k = k[..., :DQ]
    layer = Attention(score=score, normaliser=normaliser, features=A)
    theta = {"p": module_params(score, params), "q": q, "k": k, "v": v}
    rng = np.random.default_rng(1)
    g_ctx, g_a = rng.standard_normal((B, TQ, DV)), rng.standard_normal((B, TQ, TK))

    def loss(t):
        ctx, a = layer.apply({"params": t["p"]}, t["q"], t["k"], t["v"], key_mask, attn_mask)
        return jnp.sum(ctx * g_ctx) + jnp.sum(a * g_a), (ctx, a)

    # Eager, not jitted: the 15 combinations share their primitives' compilations, several
    # times cheaper than 15 compiled programs.
    with jax.enable_x64(True):
        shapes = jax.eval_shape(layer.init, jax.random.key(0), q, k, v)
        (_, (ctx, a)), grads = jax.value_and_grad(loss, has_aux=True)(theta)
    assert jax.tree.map(np.shape, shapes.get("params", {})) == jax.tree.map(np.shape, theta["p"])
    assert ctx.dtype == jnp.float64
    ctx_np, a_np = np_attention(score, normaliser, theta["p"], q, k, v, keep)
    assert rel_err(a, a_np) <= TOL and rel_err(ctx, ctx_np) <= TOL
    a = np.asarray(a)
    assert np.all(a[~keep] == 0.0)
    if normaliser != "softmax":  # the point is a sparse one, with some supports of 2+ keys
        assert np.any(a[keep] == 0.0) and np.any((a > 0).sum(-1) > 1)
    # the padded key gets exactly zero gradient, through the scores (k) and the contexts (v)
    for name in ("k", "v"):
        assert np.all(np.asarray(grads[name])[~key_mask] == 0.0), name

    def np_loss(t):
        ctx, a = np_attention(score, normaliser, t["p"], t["q"], t["k"], t["v"], keep)
        return np.sum(ctx * g_ctx) + np.sum(a * g_a)

    # autodiff of dlcore against central differences of the NumPy formulas along random
    # directions u: grad . u = (f(theta + eps u) - f(theta - eps u)) / (2 eps) + O(eps^2)
    auto, fd = [], []
    for _ in range(6):
        u = jax.tree.map(lambda x: rng.standard_normal(np.shape(x)), theta)
        auto.append(tree_dot(grads, u))
        plus, minus = (jax.tree.map(lambda x, d, s=s: x + s * EPS * d, theta, u) for s in (1, -1))
        fd.append((np_loss(plus) - np_loss(minus)) / (2 * EPS))
    assert rel_err(auto, fd) <= 1e-7


# ---- mask properties ----------------------------------------------------------------------


@pytest.mark.parametrize("normaliser", NORMALISERS)
def test_masked_scores_get_zero_weight_and_exactly_zero_gradient(normaliser):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((B, TQ, TK))
    keep = rng.random((B, TQ, TK)) < 0.6
    keep[0, 0] = False  # a query with every key masked
    keep[1, 2] = [True, False, True, False, False]
    keep[1, 1] = True
    h = rng.standard_normal(z.shape)
    with jax.enable_x64(True):
        a, vjp = jax.vjp(lambda z: normalise(normaliser, z, jnp.asarray(keep)), z)
        (dz,) = vjp(jnp.asarray(h))
    a, dz = np.asarray(a), np.asarray(dz)
    assert np.all(a[~keep] == 0.0) and np.all(dz[~keep] == 0.0)
    assert np.all(a[0, 0] == 0.0) and np.all(np.isfinite(dz))
    np.testing.assert_allclose(a.sum(-1)[keep.any(-1)], 1.0, rtol=1e-12)
    assert np.abs(dz[keep]).max() > 0
    assert rel_err(a, np_normalise(normaliser, z, keep)) <= TOL


@pytest.mark.parametrize("normaliser", NORMALISERS)
def test_the_causal_mask_leaks_nothing_and_an_all_masked_query_gets_zeros(case, normaliser):
    """With query i allowed keys j <= i, changing the queries, keys and values after position
    t leaves the outputs at 0..t bit for bit unchanged (t = Tq - 1: keys no query sees)."""
    params, q, k, v, _, _, _ = case
    layer = Attention(score="general", normaliser=normaliser)
    variables = {"params": {"W": params["W"]}}
    mask = causal_mask(TQ, TK)
    rng = np.random.default_rng(6)
    with jax.enable_x64(True):
        ctx, a = layer.apply(variables, q, k, v, None, mask)
        for t in range(TQ):
            q2, k2, v2 = q.copy(), k.copy(), v.copy()
            q2[:, t + 1 :] = rng.standard_normal(q2[:, t + 1 :].shape)
            k2[:, t + 1 :] = rng.standard_normal(k2[:, t + 1 :].shape)
            v2[:, t + 1 :] = rng.standard_normal(v2[:, t + 1 :].shape)
            ctx2, a2 = layer.apply(variables, q2, k2, v2, None, mask)
            assert np.array_equal(ctx[:, : t + 1], ctx2[:, : t + 1]), t
            assert np.array_equal(a[:, : t + 1], a2[:, : t + 1]), t
            if t + 1 < TQ:  # the later queries do see the change: the test can fail
                assert not np.array_equal(ctx[:, t + 1 :], ctx2[:, t + 1 :]), t
        nothing = np.array([[True] * TK, [False] * TK])
        ctx3, a3 = layer.apply(variables, q, k, v, nothing, mask)
    assert np.all(np.asarray(a)[:, ~np.asarray(mask)] == 0.0)
    assert np.all(np.asarray(ctx3)[1] == 0.0) and np.all(np.asarray(a3)[1] == 0.0)
    assert np.array_equal(ctx3[0], ctx[0])


def test_mask_helpers():
    assert padding_mask(jnp.array([3, 0, 1]), 3).tolist() == [
        [True, True, True], [False, False, False], [True, False, False]
    ]  # fmt: skip
    assert causal_mask(2, 3).tolist() == [[True, False, False], [True, True, False]]
    assert np.array_equal(causal_mask(4), np.tril(np.ones((4, 4), bool)))


# ---- the sparse normalisers ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["sparsemax", "entmax15"])
def test_sparse_normalisers_give_exact_zeros_and_sum_to_one(name):
    z = np.random.default_rng(7).standard_normal((B, TQ, TK))
    z[0, 0] = [3.0, 2.5, 0.0, -1.0, -1.5]  # a clear winner pair: the rest get exactly 0
    z[0, 1] = [0.1, 0.0, -0.1, -0.2, 0.05]  # close scores: every key keeps some weight
    with jax.enable_x64(True):
        a = np.asarray(normalise(name, jnp.asarray(z)))
    assert np.all(a[0, 0, 2:] == 0.0) and np.all(a[0, 0, :2] > 0) and np.all(a[0, 1] > 0)
    np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-12)
    assert rel_err(a, np_entmax_bisect(z, ALPHA[name])) <= TOL


def test_entmax15_solves_its_defining_equation():
    """Against bisection on p_j = [z_j / 2 - tau]_+^2 over many rows and scales, along either
    axis, and in float32 with a large common offset that only the max shift survives."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((40, 7)) * rng.choice([0.3, 1.0, 4.0], size=(40, 1))

    @jax.jit
    def run(z64, z32):
        return entmax15(z64), entmax15(z64.T, axis=0).T, entmax15(z32), entmax15(z32 + 1e4)

    with jax.enable_x64(True):
        p, p_axis0, p32, p32_offset = map(np.asarray, run(z, jnp.asarray(z, jnp.float32)))
    ref = np_entmax_bisect(z, 1.5)
    assert rel_err(p, ref) <= TOL and np.array_equal(p, p_axis0)
    assert (p == 0).any() and (p > 0).sum(-1).max() >= 3
    np.testing.assert_allclose(p32, ref, atol=1e-6)
    np.testing.assert_allclose(p32_offset, ref, atol=1e-2)  # 1e4 in float32: ulp 1e-3


# ---- the module ---------------------------------------------------------------------------


def test_additive_and_concat_equal_additive_attention(case):
    """Same parameter tree from the same key (so existing AdditiveAttention code can switch),
    and the same outputs."""
    _, q, k, v, key_mask, _, _ = case
    layers = [AdditiveAttention(features=A)] + [
        Attention(score=s, features=A) for s in ("additive", "concat")
    ]
    with jax.enable_x64(True):
        inits = jax.jit(lambda key: [layer.init(key, q, k, v) for layer in layers])
        ref_vars, *others = inits(jax.random.key(7))
        for other_vars in others:
            assert jax.tree.all(jax.tree.map(np.array_equal, other_vars, ref_vars))
        variables = jax.tree.map(lambda x: np.asarray(x, np.float64), ref_vars)
        ref = layers[0].apply(variables, q, k, v, key_mask)
        for layer in layers[1:]:
            out = layer.apply(variables, q, k, v, key_mask)
            assert all(np.array_equal(x, y) for x, y in zip(out, ref, strict=True))


@pytest.mark.parametrize(
    ("layer", "shapes", "message"),
    [
        (Attention(score="luong"), None, r"unknown attention score 'luong'; valid: additive, "),
        (Attention(normaliser="max"), None, r"unknown attention normaliser 'max'; valid: "),
        (Attention(score="concat"), None, r"score 'concat' needs features .*got None"),
        (Attention(score="dot"), ((1, 2, 3), (1, 4, 5)), r"Dq = Dk\); got 3 and 5"),
        (Attention(score="general"), ((1, 2, 3), (1, 4, 3), (3, 4)), r"attn_mask must be .*"),
        (Attention(score="general"), ((1, 2, 3), (2, 4, 3)), r"must share B and Tk"),
        (Attention(score="general"), ((1, 2, 3), (1, 4, 3), (2, 4), "f"), r"must be boolean"),
    ],
)
def test_bad_options_and_shapes_give_one_line_errors(layer, shapes, message):
    q_shape, k_shape, *mask_shape = shapes or ((1, 2, 3), (1, 4, 3))
    q, k = np.ones(q_shape), np.ones(k_shape)
    mask = (
        np.ones(mask_shape[0], mask_shape[1] if len(mask_shape) > 1 else bool)
        if mask_shape
        else None
    )
    with pytest.raises(ValueError, match=message) as info:
        jax.eval_shape(layer.init, jax.random.key(0), q, k, k, None, mask)
    assert "\n" not in str(info.value)
