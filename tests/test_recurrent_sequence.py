"""The sequence layer: padding, per-length reversal, remat, unroll, custom VJP, tracing."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from recurrent_reference import np_run, random_params

from dlcore.recurrent import RNN, LSTMCell, make_cell, reverse_within_lengths

B, T, D, H = 3, 6, 3, 4
LENGTHS = np.array([6, 4, 1])


def _setup(name, seed=0, **rnn_kw):
    """(rnn, params, x) in float64; call inside enable_x64."""
    rnn = RNN(make_cell(name, H), **rnn_kw)
    x = jnp.asarray(np.random.default_rng(seed + 100).normal(size=(B, T, D)))
    return rnn, random_params(rnn, x, seed=seed), x


def _weighted_loss(rnn, lengths=None, **run_kw):
    """A loss touching every output and the final carry with distinct random weights."""
    r = np.random.default_rng(7)
    w_y = r.normal(size=(B, T, H))
    w_c = r.normal(size=(B, H))

    def loss(params, x, carry=None):
        final, y = rnn.apply(
            {"params": params}, x, lengths=lengths, carry=carry, method="run", **run_kw
        )
        return jnp.sum(y * w_y) + sum(jnp.sum(jnp.tanh(v) * w_c) for v in final.values())

    return loss


# The masking lives in the shared scan, not in the cells: one cell of each kind suffices.
@pytest.mark.parametrize(
    "name,impl", [("rnn_tanh", "scan"), ("lstm", "scan"), ("gru", "scan"), ("lstm", "custom_vjp")]
)
def test_padded_steps_get_exactly_zero_gradient(name, impl):
    with jax.enable_x64(True):
        lengths = jnp.asarray(LENGTHS)
        fwd, params, x = _setup(name, impl=impl)
        bwd = RNN(fwd.cell, impl=impl, reverse=True)

        @jax.jit
        def outputs_and_input_grads(params, x):  # both directions in one compilation
            return [
                (
                    rnn.apply({"params": params}, x, lengths=lengths),
                    jax.grad(_weighted_loss(rnn, lengths), argnums=1)(params, x),
                )
                for rnn in (fwd, bwd)
            ]

        results = outputs_and_input_grads(params, x)
    for y, g_x in results:
        for b, n in enumerate(LENGTHS):
            np.testing.assert_array_equal(y[b, n:], 0.0)  # padded outputs are exactly zero
            np.testing.assert_array_equal(g_x[b, n:], 0.0)  # ... and get exactly zero gradient
            assert np.abs(g_x[b, :n]).sum() > 0  # valid steps do get gradient


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru"])
def test_reverse_reads_each_sequence_within_its_length(name):
    """Reverse on a padded batch == each sequence reversed alone, unpadded (flax#2170)."""
    with jax.enable_x64(True):
        rnn, params, x = _setup(name, seed=1, reverse=True, return_carry=True)
        final, y = jax.jit(rnn.apply)({"params": params}, x, lengths=jnp.asarray(LENGTHS))
    for b, n in enumerate(LENGTHS):
        want_final, want_y = np_run(name, params["cell"], np.asarray(x[b, :n])[::-1])
        np.testing.assert_allclose(y[b, :n], want_y[::-1], rtol=1e-11, atol=1e-13)
        np.testing.assert_array_equal(y[b, n:], 0.0)
        np.testing.assert_allclose(final["h"][b], want_final["h"][0], rtol=1e-11, atol=1e-13)


def test_reverse_within_lengths_keeps_padding_in_place_and_is_an_involution():
    x = jnp.arange(2 * 5).reshape(2, 5)
    got = reverse_within_lengths(x, jnp.array([3, 5]))
    np.testing.assert_array_equal(got, [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]])
    np.testing.assert_array_equal(reverse_within_lengths(got, jnp.array([3, 5])), x)


@pytest.mark.parametrize("reverse,padded", [(True, True), (False, False)])
def test_custom_vjp_equals_autodiff_of_plain_scan(reverse, padded):
    """Hand-written LSTM backward == autodiff through lax.scan, float64, tight."""
    keep = jnp.asarray(np.random.default_rng(3).integers(0, 2, size=(B, H)) / 0.5)
    with jax.enable_x64(True):
        carry0 = {k: jnp.asarray(np.random.default_rng(4).normal(size=(B, H))) for k in "ch"}
        grads = {}
        for impl, remat in (("scan", False), ("custom_vjp", False), ("custom_vjp", True)):
            rnn, params, x = _setup("lstm", seed=2, impl=impl, remat=remat, reverse=reverse)
            lengths = jnp.asarray(LENGTHS) if padded else None
            loss = _weighted_loss(rnn, lengths, h_keep=keep if padded else None)
            grads[impl, remat] = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, x, carry0)
    want = grads["scan", False]
    for got in (grads["custom_vjp", False], grads["custom_vjp", True]):
        chex.assert_trees_all_close(got, want, rtol=1e-12, atol=1e-14)
    assert np.abs(want[0]["cell"]["recurrent_kernel"]).max() > 1e-3


@pytest.mark.parametrize("name", ["gru"])
def test_remat_and_unroll_give_the_same_outputs_and_gradients(name):
    with jax.enable_x64(True):
        results = []
        for kw in ({}, {"remat": True}, {"unroll": 2}):
            rnn, params, x = _setup(name, seed=5, **kw)
            loss = _weighted_loss(rnn, jnp.asarray(LENGTHS))
            results.append(jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x))
    for got in results[1:]:
        chex.assert_trees_all_close(got, results[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_sequence_gradients_match_finite_differences(name):
    with jax.enable_x64(True):
        rnn, params, x = _setup(name, seed=6, initial_carry="learned")
        loss = jax.jit(_weighted_loss(rnn, jnp.asarray(LENGTHS)))
        jax.test_util.check_grads(loss, (params, x), order=1, modes=["rev"], rtol=1e-6)
    assert {"initial_h"} <= set(params)


def test_step_compiles_once_and_time_is_not_unrolled_in_python():
    rnn = RNN(LSTMCell(H))
    x = jnp.ones((B, T, D))
    params = jax.jit(rnn.init)(jax.random.key(0), x)

    def loss(p, x, lengths):
        return jnp.sum(rnn.apply(p, x, lengths=lengths) ** 2)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def grad(p, x, lengths):
        return jax.grad(loss)(p, x, lengths)

    grad(params, x, jnp.asarray(LENGTHS))
    grad(params, x + 1.0, jnp.asarray([2, 2, 2]))  # new values, same shapes: no retrace

    def n_eqns(steps):
        xs = jnp.ones((B, steps, D))
        return len(jax.make_jaxpr(jax.grad(loss))(params, xs, LENGTHS).eqns)

    assert n_eqns(5) == n_eqns(50)  # the program does not grow with T


def test_auto_impl_picks_the_custom_vjp_for_the_plain_lstm_only(monkeypatch):
    # With the native kernels available, 'auto' prefers them (tests/test_native_rnn.py);
    # without them the plain LSTM gets the custom VJP and every other cell the scan.
    monkeypatch.setattr("dlcore.native.auto_native", lambda *arrays: False)
    x = jnp.ones((B, T, D))
    for cell, want in ((LSTMCell(H), True), (make_cell("peephole_lstm", H), False)):
        rnn = RNN(cell)
        params = random_params(rnn, x)
        jaxpr = str(jax.make_jaxpr(rnn.apply)({"params": params}, x))
        assert ("custom_vjp_call" in jaxpr) == want
        assert "dlcore_rnn_forward" not in jaxpr


def test_final_outputs_carry_passing_and_mask_argument():
    with jax.enable_x64(True):
        rnn, params, x = _setup("gru", seed=8, return_carry=True)
        lengths = jnp.asarray(LENGTHS)
        mask = jnp.arange(T)[None, :] < lengths[:, None]

        @jax.jit
        def variants(params, x):  # one compilation for all the runs compared below
            v = {"params": params}
            mid, y1 = rnn.apply(v, x[:, :3])
            end, y2 = rnn.apply(v, x[:, 3:], carry=mid)
            return dict(
                padded=rnn.apply(v, x, lengths=lengths),
                last=RNN(rnn.cell, return_sequences=False).apply(v, x, lengths=lengths),
                masked=rnn.apply(v, x, mask=mask),
                halves=(end, jnp.concatenate([y1, y2], 1)),
                full=rnn.apply(v, x),
            )

        r = variants(params, x)
    final, y = r["padded"]
    np.testing.assert_allclose(r["last"], y[np.arange(B), LENGTHS - 1], rtol=1e-13)
    np.testing.assert_allclose(r["last"], final["h"], rtol=1e-13)
    np.testing.assert_array_equal(r["masked"][1], y)
    # Two halves with the carry handed over == one pass over the whole sequence.
    chex.assert_trees_all_close(r["halves"], r["full"], rtol=1e-12)


def test_learned_initial_carry_is_a_trained_parameter():
    rnn = RNN(LSTMCell(H), initial_carry="learned")
    x = jnp.ones((B, T, D))
    params = random_params(rnn, x)
    assert set(params) == {"cell", "initial_c", "initial_h"}
    g = jax.jit(jax.grad(lambda p: jnp.sum(rnn.apply({"params": p}, x) ** 2)))(params)
    assert float(jnp.abs(g["initial_c"]).sum()) > 0
    assert set(random_params(RNN(LSTMCell(H)), x)) == {"cell"}


def test_boundary_errors_are_one_line_and_name_the_argument():
    rnn = RNN(LSTMCell(H))
    x = jnp.ones((B, T, D))
    v = {"params": random_params(rnn, x)}
    cases = [
        (dict(x=jnp.ones((T, D))), r"RNN inputs must be \[batch, time, features\]"),
        (dict(lengths=jnp.ones((B + 1,), jnp.int32)), r"lengths must be \[B\] = \(3,\)"),
        (dict(lengths=jnp.ones((B,))), "lengths must be integers"),
        (dict(lengths=jnp.ones((B,), int), mask=jnp.ones((B, T))), "either lengths or mask"),
        (dict(mask=jnp.ones((B, T + 1))), r"mask must be \[B, T\]"),
        (dict(carry={"h": jnp.zeros((B, H))}), r"carry must be a dict with keys \['c', 'h'\]"),
        (dict(carry={"c": jnp.zeros((B, 2)), "h": jnp.zeros((B, H))}), r"carry\['c'\]"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            inputs = kw.pop("x", x)
            jax.eval_shape(functools.partial(rnn.apply, **kw), v, inputs)
    with pytest.raises(ValueError, match=r"h_keep must be \[B, H\] = \(3, 4\); got \(3, 5\)"):
        jax.eval_shape(
            functools.partial(rnn.apply, method="run", h_keep=jnp.ones((B, H + 1))), v, x
        )
    gru = RNN(make_cell("gru", H), impl="custom_vjp")
    with pytest.raises(ValueError, match="impl='custom_vjp' supports LSTMCell only; got GRUCell"):
        jax.eval_shape(gru.init, jax.random.key(0), x)
    valid = "auto, custom_vjp, native, scan"
    with pytest.raises(ValueError, match=f"unknown RNN impl 'fast'; valid: {valid}"):
        jax.eval_shape(RNN(LSTMCell(H), impl="fast").init, jax.random.key(0), x)
