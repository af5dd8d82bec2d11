"""MultiHeadAttention against its equations in NumPy (float64), mask properties, gradients,
dropout and compile counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.gradcheck import gradcheck
from dlcore.layers import MultiHeadAttention, multi_head_attention

B, TQ, TK, E, H = 2, 3, 4, 6, 3


def _numpy_mha(p, q, k, v, keep, bias, heads):
    """The module docstring's equations, one head and one query at a time."""
    d = p["Wq"].shape[1] // heads
    Q, K, V = q @ p["Wq"] + p["bq"], k @ p["Wk"] + p["bk"], v @ p["Wv"] + p["bv"]
    a = np.zeros((q.shape[0], heads, q.shape[1], k.shape[1]))
    o = np.zeros(Q.shape)
    for b in range(q.shape[0]):
        for h in range(heads):
            cols = slice(h * d, (h + 1) * d)
            for i in range(q.shape[1]):
                s = K[b, :, cols] @ Q[b, i, cols] / np.sqrt(d) + bias[i]
                w = np.where(keep[b, i], np.exp(s - s[keep[b, i]].max()), 0.0)
                a[b, h, i] = w / w.sum()
                o[b, i, cols] = a[b, h, i] @ V[b, :, cols]
    return o @ p["Wo"] + p["bo"], a


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    widths = {"Wq": (5, E), "Wk": (4, E), "Wv": (2, E), "Wo": (E, E)}
    p = {n: 0.6 * rng.standard_normal(s) for n, s in widths.items()}
    p.update({n: 0.3 * rng.standard_normal(E) for n in ("bq", "bk", "bv", "bo")})
    q, k, v = (
        rng.standard_normal((B, TQ, 5)),
        rng.standard_normal((B, TK, 4)),
        rng.standard_normal((B, TK, 2)),
    )
    key_mask = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
    attn_mask = np.tril(np.ones((TQ, TK), bool), k=1)
    bias = 0.5 * rng.standard_normal((TQ, TK))
    return p, q, k, v, key_mask, attn_mask, bias


def _apply(p, q, k, v, key_mask, attn_mask, bias, average=False):
    return multi_head_attention(
        p,
        q,
        k,
        v,
        num_heads=H,
        key_mask_BxTk=key_mask,
        attn_mask=attn_mask,
        attn_bias=bias,
        average_weights=average,
    )


def test_matches_the_equations_in_float64(case):
    p, q, k, v, key_mask, attn_mask, bias = case
    keep = key_mask[:, None, :] & attn_mask[None]
    y_ref, a_ref = _numpy_mha(p, q, k, v, keep, bias, H)
    with jax.enable_x64(True):
        y, a = _apply(p, q, k, v, key_mask, attn_mask, bias)
        _, a_mean = _apply(p, q, k, v, key_mask, attn_mask, bias, average=True)
    assert y.dtype == jnp.float64 and a.shape == (B, H, TQ, TK)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a, a_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a_mean, a_ref.mean(axis=1), rtol=0, atol=1e-12)


def test_masked_keys_get_zero_weight_and_zero_gradient(case):
    p, q, k, v, key_mask, attn_mask, bias = case
    with jax.enable_x64(True):
        _, a = _apply(p, q, k, v, key_mask, attn_mask, bias)

        def loss(k, v):
            y, a = _apply(p, q, k, v, key_mask, None, None)
            return jnp.sum(y**2) + jnp.sum(a**2)

        dk, dv = (np.asarray(g) for g in jax.grad(loss, argnums=(0, 1))(k, v))
        a = np.asarray(a)
    keep = key_mask[:, None, None, :] & attn_mask[None, None]
    assert np.all(a[~np.broadcast_to(keep, a.shape)] == 0.0)
    assert np.all(dk[0, 2] == 0.0) and np.all(dv[0, 2] == 0.0)  # the padded key of row 0
    assert np.all(dk[0, [0, 1, 3]] != 0.0) and np.all(dv[1] != 0.0)
    # a query with every key masked gets zero weights (PyTorch: NaN), not a uniform average
    with jax.enable_x64(True):
        _, a = _apply(p, q, k, v, np.zeros((B, TK), bool), None, None)
        assert np.all(np.asarray(a) == 0.0)


def test_gradients_match_finite_differences(case):
    p, q, k, v, key_mask, attn_mask, bias = case

    def loss(theta, q, k, v):
        y, a = _apply(theta, q, k, v, key_mask, attn_mask, bias)
        return jnp.sum(jnp.sin(y)) + jnp.sum(a * jnp.arange(TK).reshape(1, 1, 1, TK))

    # bk shifts every score of a query by the same Q_i . bk, which the softmax ignores: its
    # gradient is exactly 0 in theory, so check it by its size and the rest by relative error
    result = gradcheck(loss, p, q, k, v)
    assert result.abs_err.pop("['bk']") < 1e-12
    assert max(result.rel_err[name] for name in result.abs_err) < 1e-6, str(result)
    gradcheck(lambda x, p: loss(p, *x), (q, k, v), p).assert_ok(1e-6)


def test_dropout_drops_weights_only_in_training():
    layer = MultiHeadAttention(num_heads=2, dropout_rate=0.5, average_weights=False)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 5, 4)), jnp.float32)
    variables = jax.jit(layer.init, static_argnames="train")(
        jax.random.key(0), x, x, x, train=False
    )
    apply = jax.jit(layer.apply, static_argnames="train")
    y0, a0 = apply(variables, x, x, x, train=False)
    y1, a1 = apply(variables, x, x, x, train=True, rngs={"dropout": jax.random.key(2)})
    kept = np.asarray(a1) != 0
    assert 0 < kept.mean() < 1  # some weights dropped, some kept
    np.testing.assert_allclose(np.asarray(a1)[kept], 2 * np.asarray(a0)[kept], rtol=1e-6)
    assert not np.allclose(y0, y1)
    y2, _ = apply(variables, x, x, x, train=True, rngs={"dropout": jax.random.key(2)})
    np.testing.assert_array_equal(y1, y2)  # the key, not hidden state, decides the mask


def test_jit_compiles_once():
    layer = MultiHeadAttention(num_heads=2)
    x = jnp.ones((2, 3, 4))
    variables = layer.init(jax.random.key(0), x, x, x, train=False)
    traces = []

    @jax.jit
    def f(variables, x, mask):
        traces.append(1)
        return layer.apply(variables, x, x, x, key_mask_BxTk=mask, train=False)

    for i in range(3):
        f(variables, x + i, jnp.array([[1, 1, i % 2], [1, 0, 1]], bool))
    assert len(traces) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"key_mask_BxTk": jnp.ones((2, 3))}, "key_mask must be boolean.*attn_bias"),
        ({"key_mask_BxTk": jnp.ones((2, 4), bool)}, r"key_mask must be \[B, Tk\] = \(2, 3\)"),
        ({"attn_mask": jnp.ones((3, 2), bool)}, r"attn_mask must be \[Tq, Tk\].*got \(3, 2\)"),
        ({"attn_bias": jnp.ones((2, 2, 3, 3, 1))}, "attn_bias must be"),
        ({"num_heads": 4}, "embed_dim 6 must be divisible by num_heads 4"),
    ],
)
def test_bad_inputs_are_one_line_errors(kwargs, match):
    p = {n: jnp.ones((6, 6)) for n in ("Wq", "Wk", "Wv", "Wo")}
    x = jnp.ones((2, 3, 6))
    kwargs = {"num_heads": 2, **kwargs}
    with pytest.raises(ValueError, match=match) as err:
        multi_head_attention(p, x, x, x, **kwargs)
    assert "\n" not in str(err.value)
