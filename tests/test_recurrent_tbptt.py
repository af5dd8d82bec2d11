"""Truncated BPTT: k = T is full BPTT, k < T sums per-chunk gradients, the carry is state."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from recurrent_reference import random_params

from dlcore.engine.state import TrainState
from dlcore.recurrent import RNN, LSTMCell, reset_carry, split_chunks, tbptt_step, truncated_bptt

B, T, D, H = 2, 6, 3, 4
RNN_LAYER = RNN(LSTMCell(H), return_carry=True)


def loss_fn(params, carry, chunk):
    """Squared error of a linear readout of every step; returns (loss, new carry)."""
    x, target = chunk
    new_carry, y = RNN_LAYER.apply({"params": params["rnn"]}, x, carry=carry)
    pred = y @ params["readout"]
    return jnp.sum((pred - target) ** 2), new_carry


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(B, T, D)))
    target = jnp.asarray(rng.normal(size=(B, T, 1)))
    params = {
        "rnn": random_params(RNN_LAYER, x, seed=seed),
        "readout": jnp.asarray(rng.normal(size=(H, 1))),
    }
    carry = {k: jnp.asarray(rng.normal(size=(B, H))) for k in "ch"}
    return params, carry, (x, target)


@functools.partial(jax.jit, static_argnames="k")
def _tbptt(params, carry, stream, k):
    return truncated_bptt(loss_fn, params, carry, stream, k)


def test_k_equal_to_T_is_exactly_full_bptt():
    with jax.enable_x64(True):
        params, carry, stream = _problem()
        loss, grads, final = _tbptt(params, carry, stream, T)
        (want_loss, want_final), want_grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
            params, carry, stream
        )
    chex.assert_trees_all_close(
        (loss, grads, final), (want_loss, want_grads, want_final), rtol=1e-12
    )


def test_k_below_T_sums_per_chunk_gradients_with_the_carry_detached():
    k = 2
    with jax.enable_x64(True):
        params, carry, stream = _problem(1)
        loss, grads, final = _tbptt(params, carry, stream, k)
        # By hand: chunk by chunk, each chunk's gradient stopping at its incoming carry.
        step = jax.jit(functools.partial(tbptt_step, loss_fn))
        want_loss, want_grads, c = 0.0, jax.tree.map(jnp.zeros_like, params), carry
        for n in range(T // k):
            chunk = jax.tree.map(lambda a, n=n: a[:, n * k : (n + 1) * k], stream)
            l_n, g_n, c = step(params, c, chunk)
            want_loss, want_grads = want_loss + l_n, jax.tree.map(jnp.add, want_grads, g_n)
        full = jax.jit(jax.grad(lambda p: loss_fn(p, carry, stream)[0]))(params)
    chex.assert_trees_all_close((loss, grads, final), (want_loss, want_grads, c), rtol=1e-12)
    # Forward values are those of one pass over the whole stream; the gradient is truncated.
    assert not np.allclose(
        grads["rnn"]["cell"]["recurrent_kernel"], full["rnn"]["cell"]["recurrent_kernel"]
    )


def test_carry_in_train_state_extra_resumes_exactly():
    params, carry, stream = _problem(2)
    params = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    tx = optax.sgd(0.05)
    chunks = jax.tree.map(lambda a: split_chunks(a.astype(jnp.float32), 2), stream)

    @jax.jit
    def train_step(state, chunk):
        loss, grads, new_carry = tbptt_step(loss_fn, state.params, state.extra["carry"], chunk)
        updates, opt_state = tx.update(grads, state.opt_state)
        return state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            extra={"carry": new_carry},
        ), loss

    def run(state, first, last):
        for n in range(first, last):
            state, _ = train_step(state, jax.tree.map(lambda a, n=n: a[n], chunks))
        return state

    zero = {k: jnp.zeros((B, H)) for k in "ch"}
    state0 = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state={},
        opt_state=tx.init(params),
        rng=jax.random.PRNGKey(0),
        extra={"carry": zero},
    )
    straight = run(state0, 0, 3)
    # "Checkpoint" after one step: host copy of the whole state, then continue from it.
    restored = jax.tree.map(jnp.asarray, jax.device_get(run(state0, 0, 1)))
    resumed = run(restored, 1, 3)
    chex.assert_trees_all_equal(resumed, straight)
    assert float(jnp.abs(straight.extra["carry"]["h"]).sum()) > 0


def test_reset_carry_and_chunk_errors():
    carry = {"h": jnp.ones((3, 2))}
    out = reset_carry(carry, jnp.array([True, False, True]), {"h": jnp.zeros((3, 2))})
    np.testing.assert_array_equal(out["h"], [[0, 0], [1, 1], [0, 0]])
    with pytest.raises(ValueError, match="chunk length k must divide T = 6; got k = 4"):
        split_chunks(jnp.zeros((2, 6, 3)), 4)
    np.testing.assert_array_equal(split_chunks(jnp.arange(6)[None], 3), [[[0, 1, 2]], [[3, 4, 5]]])
