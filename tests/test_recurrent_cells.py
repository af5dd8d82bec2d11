"""Each cell against its equations in NumPy; initializers; registries; numerical gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from recurrent_reference import CELL_NAMES, LSTM_LIKE, np_run, np_step, random_params

from dlcore.recurrent import (
    CELLS,
    RNN,
    CoupledLSTMCell,
    ElmanCell,
    GRUCell,
    LSTMCell,
    gate_blocks_init,
    make_cell,
)

B, T, D, H = 3, 5, 3, 4


def _cell_and_params(name, seed=0, **kw):
    cell = make_cell(name, H, **kw)
    with jax.enable_x64(True):
        carry = cell.zero_carry(B, jnp.float64)
        return cell, random_params(cell, carry, jnp.zeros((B, D)), seed=seed)


def test_registry_is_complete():
    assert set(CELLS) == set(CELL_NAMES)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_one_step_matches_numpy_equations(name):
    cell, params = _cell_and_params(name)
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        carry = {k: jnp.asarray(rng.normal(size=(B, H))) for k in cell.carry_names}
        x = jnp.asarray(rng.normal(size=(B, D)))
        got_carry, got_h = jax.jit(cell.apply)({"params": params}, carry, x)
        want_carry, want_h = np_step(name, params, carry, np.asarray(x))
    np.testing.assert_allclose(got_h, want_h, rtol=1e-12, atol=1e-14)
    for k in cell.carry_names:
        np.testing.assert_allclose(got_carry[k], want_carry[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_sequence_matches_numpy_equations(name):
    """The full scan, padded batch, against each sequence run alone in NumPy."""
    cell, params = _cell_and_params(name, seed=2)
    lengths = np.array([5, 3, 1])
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(3).normal(size=(B, T, D)))
        apply = jax.jit(RNN(cell, return_carry=True).apply)
        final, y = apply({"params": {"cell": params}}, x, lengths=jnp.asarray(lengths))
    for b, n in enumerate(lengths):
        want_final, want_y = np_run(name, params, np.asarray(x[b, :n]))
        np.testing.assert_allclose(y[b, :n], want_y, rtol=1e-11, atol=1e-13)
        np.testing.assert_array_equal(y[b, n:], 0.0)
        for k in cell.carry_names:
            np.testing.assert_allclose(final[k][b], want_final[k][0], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_cell_gradients_match_finite_differences(name):
    cell, params = _cell_and_params(name, seed=4)
    with jax.enable_x64(True):
        rng = np.random.default_rng(5)
        carry = {k: jnp.asarray(rng.normal(size=(2, H))) for k in cell.carry_names}
        x = jnp.asarray(rng.normal(size=(2, D)))

        def f(p, c, x):
            new, h = cell.apply({"params": p}, c, x)
            return jnp.sum(h * h) + sum(jnp.sum(jnp.sin(v)) for v in new.values())

        check_grads(jax.jit(f), (params, carry, x), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def _init_params(cell):
    # identity recurrent init: no QR to compile, these tests are about the other params.
    return jax.jit(cell.init)(jax.random.key(0), cell.zero_carry(1), jnp.zeros((1, D)))["params"]


def test_forget_gate_bias_starts_at_one():
    for cls, block in ((LSTMCell, 1), (CoupledLSTMCell, 0)):
        bias = np.asarray(_init_params(cls(H, recurrent_init="identity"))["input"]["bias"])
        want = np.zeros((cls.num_gates, H))
        want[block] = 1.0
        np.testing.assert_array_equal(bias.reshape(-1, H), want)
    params = _init_params(LSTMCell(H, forget_bias=2.5, recurrent_init="identity"))
    np.testing.assert_array_equal(params["input"]["bias"][H : 2 * H], 2.5)


@pytest.mark.parametrize("cls", [ElmanCell, LSTMCell, GRUCell])
def test_cells_use_the_named_recurrent_init(cls):
    u = np.asarray(_init_params(cls(H, recurrent_init="identity"))["recurrent_kernel"])
    np.testing.assert_array_equal(u, np.tile(np.eye(H), (1, cls.num_gates)))


@pytest.mark.parametrize("gates", [1, 4])
def test_orthogonal_init_makes_each_gate_block_orthogonal(gates):
    u = np.asarray(gate_blocks_init("orthogonal", gates)(jax.random.key(0), (H, gates * H)))
    for k in range(gates):
        block = u[:, k * H : (k + 1) * H]
        np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)
    if gates > 1:  # blocks drawn independently, not one matrix repeated
        assert not np.allclose(u[:, :H], u[:, H : 2 * H])


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown cell 'lstn'; valid: coupled_lstm, gru, lstm"):
        make_cell("lstn", H)
    cell = LSTMCell(features=H, recurrent_init="orthogonl")
    with pytest.raises(ValueError, match="unknown recurrent_init 'orthogonl'; valid: .*identity"):
        cell.init(jax.random.key(0), cell.zero_carry(1), jnp.zeros((1, D)))
    with pytest.raises(ValueError, match=r"recurrent kernel must be \[H, 4\*H\]"):
        gate_blocks_init("identity", 4)(jax.random.key(0), (H, 3 * H))


def test_rnn_relu_entry_uses_relu():
    assert make_cell("rnn_relu", H).activation == "relu"
    assert make_cell("rnn_tanh", H).activation == "tanh"
    assert set(LSTM_LIKE) <= set(CELLS)
