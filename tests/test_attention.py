"""Additive attention against the hand-derived NumPy baseline, and its key mask.

Comparisons run in float64 with a relative error bound of 1e-6 (norm of the difference over the
larger norm).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from benchmarks.numpy_ref import attention as np_attn
from dlcore.layers.attention import AdditiveAttention, additive_attention

TOL = 1e-6


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


@pytest.fixture(scope="module")
def case():
    """Tiny shapes with Dq != Dk != Dv and a nonzero bias, so every path is exercised."""
    rng = np.random.default_rng(0)
    params = np_attn.init_params(rng, 4, 3, 5, np.float64)
    params["b"] = 0.3 * rng.standard_normal(5)
    q = rng.standard_normal((2, 3, 4))
    k = rng.standard_normal((2, 6, 3))
    v = rng.standard_normal((2, 6, 2))
    g = rng.standard_normal((2, 3, 2))  # upstream gradient of the contexts
    return params, q, k, v, g


def grads_of(params, q, k, v, g, mask=None):
    """dlcore's contexts, weights and gradients of sum(ctx * g) wrt params, q, k, v."""
    with jax.enable_x64(True):

        def f(p, q, k, v):
            ctx, _ = additive_attention(p, q, k, v, mask)
            return jnp.sum(ctx * g)

        ctx, alpha = jax.jit(additive_attention)(params, q, k, v, mask)
        assert ctx.dtype == jnp.float64
        grads = jax.jit(jax.grad(f, argnums=(0, 1, 2, 3)))(params, q, k, v)
    return ctx, alpha, grads


def test_outputs_and_gradients_match_numpy(case):
    params, q, k, v, g = case
    ctx, alpha, (dp, dq, dk, dv) = grads_of(params, q, k, v, g)
    ctx_np, alpha_np, cache = np_attn.forward(params, q, k, v)
    dp_np, dq_np, dk_np, dv_np = np_attn.backward(g, cache, params)
    assert rel_err(ctx, ctx_np) <= TOL and rel_err(alpha, alpha_np) <= TOL
    for name in ("Wq", "Wk", "b", "w"):
        assert rel_err(dp[name], dp_np[name]) <= TOL, name
    for ours, theirs in ((dq, dq_np), (dk, dk_np), (dv, dv_np)):
        assert rel_err(ours, theirs) <= TOL


def test_masked_gradients_pass_numerical_check(case):
    params, q, k, v, _ = case
    mask = np.array([[1, 1, 0, 1, 0, 1], [0, 1, 1, 1, 1, 1]])
    with jax.enable_x64(True):
        check_grads(
            lambda q, k, v: additive_attention(params, q, k, v, mask)[0],
            tuple(map(jnp.asarray, (q, k, v))),
            order=1,
            modes=("rev",),
        )


def test_masked_keys_get_zero_weight_and_zero_gradient(case):
    params, q, k, v, g = case
    mask = np.array([[1, 1, 0, 1, 0, 1], [0, 1, 1, 1, 1, 1]], bool)
    _, alpha, (_, _, dk, dv) = grads_of(params, q, k, v, g, mask)
    assert np.all(np.asarray(alpha)[~np.broadcast_to(mask[:, None, :], alpha.shape)] == 0.0)
    np.testing.assert_allclose(np.asarray(alpha).sum(-1), 1.0, rtol=1e-12)
    assert np.all(np.asarray(dk)[~mask] == 0.0) and np.all(np.asarray(dv)[~mask] == 0.0)
    assert np.all(np.abs(np.asarray(dk)[mask]) > 0)


def test_masking_equals_dropping_the_masked_keys(case):
    """Row 0 with keys 2 and 4 masked is the baseline run on the other four keys alone."""
    params, q, k, v, _ = case
    mask = np.array([[1, 1, 0, 1, 0, 1], [1, 1, 1, 1, 1, 1]])
    ctx, _, _ = grads_of(params, q, k, v, np.zeros((2, 3, 2)), mask)
    keep = [0, 1, 3, 5]
    ctx_np, _, _ = np_attn.forward(params, q[:1], k[:1, keep], v[:1, keep])
    assert rel_err(ctx[:1], ctx_np) <= TOL
    ctx_full, _, _ = np_attn.forward(params, q[1:], k[1:], v[1:])
    assert rel_err(ctx[1:], ctx_full) <= TOL


def test_all_masked_row_gives_zero_context_and_finite_gradients(case):
    params, q, k, v, g = case
    mask = np.array([[0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    ctx, alpha, grads = grads_of(params, q, k, v, g, mask)
    assert np.all(np.asarray(alpha)[0] == 0.0) and np.all(np.asarray(ctx)[0] == 0.0)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(grads))


def test_module_holds_the_baseline_parameters(case):
    params, q, k, v, _ = case
    layer = AdditiveAttention(features=5)
    variables = jax.eval_shape(layer.init, jax.random.key(0), q, k, v)
    shapes = jax.tree.map(jnp.shape, variables["params"])
    assert shapes == {"Wq": (4, 5), "Wk": (3, 5), "b": (5,), "w": (5,)}
    with jax.enable_x64(True):
        ctx, _ = jax.jit(layer.apply)({"params": params}, q, k, v)
    ctx_np, _, _ = np_attn.forward(params, q, k, v)
    assert rel_err(ctx, ctx_np) <= TOL


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((2, 3, 4), (2, 6, 3), (2, 5, 2), None), r"must share B and Tk; got .*\(2, 5, 2\)"),
        (((2, 3, 4), (1, 6, 3), (1, 6, 2), None), "must share B and Tk"),
        (((2, 3, 4), (2, 6, 3), (2, 6, 2), (2, 5)), r"key_mask must be \[B, Tk\] = \(2, 6\)"),
        (((3, 4), (2, 6, 3), (2, 6, 2), None), r"queries must be \[B, Tq, Dq\]"),
    ],
)
def test_mismatched_shapes_give_one_line_errors(case, shapes, message):
    params = case[0]
    q, k, v = (jnp.ones(s) for s in shapes[:3])
    mask = None if shapes[3] is None else jnp.ones(shapes[3])
    with pytest.raises(ValueError, match=message) as info:
        additive_attention(params, q, k, v, mask)
    assert "\n" not in str(info.value)


def test_benchmark_slot_trains_the_dlcore_layer():
    from benchmarks import suite_attention

    rng = np.random.default_rng(1)
    q, k, v, target = (rng.standard_normal(s, dtype=np.float32) for s in [(2, 3, 4)] * 4)
    cand = suite_attention.dlcore_attention(q, k, v, target, features=5)
    assert cand.step is not None, cand.note
    losses = [float(cand.step()["loss"]) for _ in range(3)]
    assert losses[2] < losses[0]  # Adam steps on the same batch reduce the loss
