"""oneDNN LSTM/GRU (``impl='native'``) against the XLA scan: outputs, final carries and every
gradient, with padding, reversal, given carries, both directions, under jit/grad/vmap/scan;
padded steps exactly zero; selection and one-line errors.

Shapes are tiny and each comparison is ONE jitted function holding both implementations,
so the whole file costs a handful of compiles.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore import native
from dlcore.recurrent import (
    RNN,
    Bidirectional,
    ElmanCell,
    GRUCell,
    LSTMCell,
    PeepholeLSTMCell,
)

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels unavailable")

B, T, D, H = 3, 5, 3, 4
LENGTHS = np.array([5, 2, 0], np.int32)  # full, padded, empty
TOL = dict(rtol=2e-5, atol=2e-5)
CELLS = {
    "lstm": lambda: LSTMCell(H),
    "gru": lambda: GRUCell(H),
    "gru_reset_after": lambda: GRUCell(H, reset_after=True),
}


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
    weights = jnp.asarray(rng.normal(size=(B, T, H)), jnp.float32)  # makes ∂y non-uniform
    return x, weights


def _params(rnn, x, seed=1):
    params = rnn.init(jax.random.key(seed), x)["params"]
    # Random biases too (zeros at init would hide bias-gradient and b_hn mistakes).
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    noisy = [a + 0.3 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(tree, noisy)


def _variants_loss(cell, impl):
    """Loss over two runs from a given carry (full length forward; reverse with lengths) and
    the runs' outputs, for ``jax.value_and_grad(..., has_aux=True)``."""
    fwd = RNN(cell, impl=impl, return_carry=True)
    bwd = RNN(cell, impl=impl, return_carry=True, reverse=True)

    def loss(params, x, carry0, weights, lengths):
        v = {"params": params}
        runs = {
            "plain": fwd.apply(v, x, carry=carry0),
            "reverse": bwd.apply(v, x, lengths=lengths, carry=carry0),
        }
        total = 0.0
        for n, (final, y) in enumerate(runs.values()):
            total += jnp.sum(jnp.sin(y) * weights) + (n + 1) * sum(
                jnp.sum(c * c) for c in final.values()
            )
        return total, runs

    return loss


@functools.cache
def _compare(name: str):
    """(native, xla) results of value_and_grad over the variants, one compile per cell."""
    cell = CELLS[name]()
    x, weights = _data()
    params = _params(RNN(cell), x)
    carry0 = {k: jnp.full((B, H), 0.5, jnp.float32) for k in cell.carry_names}

    @jax.jit
    def both(params, x, carry0, weights, lengths):
        out = {}
        for impl in ("native", "scan"):
            grad = jax.value_and_grad(_variants_loss(cell, impl), argnums=(0, 1, 2), has_aux=True)
            out[impl] = grad(params, x, carry0, weights, lengths)
        return out

    return both(params, x, carry0, weights, jnp.asarray(LENGTHS))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_native_matches_scan_outputs_carries_and_gradients(name):
    out = _compare(name)
    (loss_n, runs_n), grads_n = out["native"]
    (loss_x, runs_x), grads_x = out["scan"]
    chex.assert_trees_all_close(runs_n, runs_x, **TOL)
    # ∂ params (input W, b; U; b_hn), ∂ x and ∂ initial carry.
    chex.assert_trees_all_close(grads_n, grads_x, **TOL)
    np.testing.assert_allclose(loss_n, loss_x, rtol=1e-5)
    assert float(jnp.abs(grads_n[2]["h"]).sum()) > 0  # the given carry was differentiated


@pytest.mark.parametrize("name", sorted(CELLS))
def test_padded_steps_are_exactly_zero_and_empty_sequences_keep_their_carry(name):
    (_, runs), grads = _compare(name)["native"]
    final, y = runs["reverse"]
    for b, length in enumerate(LENGTHS):
        assert not np.any(np.asarray(y[b, length:])), b
    # The empty sequence (b = 2) ends where it started, bit for bit.
    for k in final:
        np.testing.assert_array_equal(final[k][2], np.full(H, 0.5, np.float32))
    # Padded inputs get exactly zero gradient.
    fn = jax.grad(lambda x: jnp.sum(_run_native_lengths(name, x)))
    dx = fn(_data()[0])
    for b, length in enumerate(LENGTHS):
        assert not np.any(np.asarray(dx[b, length:])), b


def _run_native_lengths(name, x):
    cell = CELLS[name]()
    rnn = RNN(cell, impl="native")
    params = _params(RNN(cell), x)
    return jnp.sin(rnn.apply({"params": params}, x, lengths=jnp.asarray(LENGTHS)))


def test_bidirectional_with_lengths_matches_scan():
    x, weights = _data(3)

    def pair(impl):
        return Bidirectional(RNN(LSTMCell(H), impl=impl), RNN(LSTMCell(H), impl=impl))

    params = _params(pair("scan"), x)

    @jax.jit
    def both(params, x):
        out = {}
        for impl in ("native", "scan"):

            def loss(params, x, impl=impl):
                finals, y = pair(impl).apply(
                    {"params": params}, x, lengths=jnp.asarray(LENGTHS), return_carry=True
                )
                return jnp.sum(y * jnp.concatenate([weights, weights], -1)), (finals, y)

            out[impl] = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x)
        return out

    out = both(params, x)
    chex.assert_trees_all_close(out["native"], out["scan"], **TOL)
    y = out["native"][0][1][1]
    assert not np.any(np.asarray(y[1, 2:])) and not np.any(np.asarray(y[2]))


def test_population_vmap_and_carry_handover_inside_scan():
    # Two population members (vmapped params and data), each reading its sequence in two
    # chunks with lax.scan handing the carry over: jit, grad, vmap and scan at once.
    cell = GRUCell(H, reset_after=True)
    x, _ = _data(4)
    xs = jnp.stack([x, x[::-1]])  # [P, B, T, D]
    members = [_params(RNN(cell), x, seed=s) for s in (1, 2)]
    params = jax.tree.map(lambda *a: jnp.stack(a), *members)

    def member_loss(params, x, impl):
        rnn = RNN(cell, impl=impl, return_carry=True)
        chunks = jnp.stack(jnp.split(x[:, :4], 2, axis=1))  # [2, B, 2, D]

        def body(carry, chunk):
            carry, y = rnn.apply({"params": params}, chunk, carry=carry)
            return carry, jnp.sum(y**2)

        carry, losses = jax.lax.scan(body, cell.zero_carry(B), chunks)
        return jnp.sum(losses) + jnp.sum(carry["h"])

    @jax.jit
    def both(params, xs):
        return {
            impl: jax.vmap(jax.value_and_grad(functools.partial(member_loss, impl=impl)))(
                params, xs
            )
            for impl in ("native", "scan")
        }

    out = both(params, xs)
    chex.assert_trees_all_close(out["native"], out["scan"], **TOL)
    assert not np.allclose(out["native"][0][0], out["native"][0][1])  # members differ


def test_native_is_deterministic_and_inference_matches_training():
    x, _ = _data(5)
    rnn = RNN(LSTMCell(H), impl="native")
    params = _params(rnn, x)

    def loss(p, x):
        return jnp.sum(rnn.apply({"params": p}, x) ** 2)

    fn = jax.jit(jax.value_and_grad(loss))
    chex.assert_trees_all_equal(fn(params, x), fn(params, x))
    # Without a gradient the inference primitive runs (no workspace): same value.
    np.testing.assert_allclose(jax.jit(loss)(params, x), fn(params, x)[0], rtol=1e-6)


def test_auto_picks_native_for_plain_lstm_and_gru_in_float32_only():
    x, _ = _data()

    def jaxpr(rnn, **kw):  # shapes only: nothing is compiled or run
        v = jax.eval_shape(rnn.init, jax.random.key(0), x)
        return str(jax.make_jaxpr(functools.partial(rnn.apply, **kw))(v, x))

    for cell in CELLS.values():
        assert "dlcore_rnn_forward" in jaxpr(RNN(cell()))
    assert "dlcore_rnn_forward" not in jaxpr(RNN(PeepholeLSTMCell(H)))
    assert "dlcore_rnn_forward" not in jaxpr(RNN(LSTMCell(H), remat=True))
    assert "dlcore_rnn_forward" not in jaxpr(
        RNN(LSTMCell(H)), method="run", h_keep=jnp.ones((B, H))
    )
    assert "dlcore_rnn_forward" not in jaxpr(RNN(LSTMCell(H), impl="custom_vjp"))
    assert {"lstm", "gru"} <= set(native.used())
    with jax.enable_x64(True):
        x64 = x.astype(jnp.float64)
        rnn = RNN(LSTMCell(H))
        v = jax.eval_shape(rnn.init, jax.random.key(0), x64)
        assert "dlcore_rnn_forward" not in str(jax.make_jaxpr(rnn.apply)(v, x64))


def test_forcing_native_on_unsupported_cells_and_options_is_one_line_error():
    x, _ = _data()
    cases = [
        (RNN(PeepholeLSTMCell(H), impl="native"), {}, "does not support PeepholeLSTMCell"),
        (RNN(ElmanCell(H), impl="native"), {}, "does not support ElmanCell"),
        (RNN(LSTMCell(H), impl="native", remat=True), {}, "does not support remat=True"),
        (
            RNN(GRUCell(H), impl="native"),
            {"method": "run", "h_keep": jnp.ones((B, H))},
            r"does not support recurrent dropout \(h_keep\)",
        ),
    ]
    for rnn, kw, message in cases:
        with pytest.raises(ValueError, match=f"RNN impl='native' {message}") as err:
            jax.eval_shape(functools.partial(rnn.init, **kw), jax.random.key(0), x)
        assert "\n" not in str(err.value).split("\n---")[0]
    with jax.enable_x64(True), pytest.raises(ValueError, match="needs float32 inputs; got float64"):
        jax.eval_shape(RNN(LSTMCell(H), impl="native").init, jax.random.key(0), x.astype("f8"))
