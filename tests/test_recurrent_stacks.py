"""Bidirectional and deep stacks: per-length reversal, dropout placement, variational masks."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from recurrent_reference import np_run, random_params

from dlcore.recurrent import RNN, Bidirectional, GRUCell, LSTMCell, StackedRNN

B, T, D, H = 3, 5, 3, 4
LENGTHS = np.array([5, 3, 1])


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_equals_each_sequence_run_unpadded(merge):
    bi = Bidirectional(RNN(LSTMCell(H)), RNN(GRUCell(H)), merge=merge)
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(0).normal(size=(B, T, D)))
        params = random_params(bi, x)
        y = jax.jit(bi.apply)({"params": params}, x, lengths=jnp.asarray(LENGTHS))
        fwd = jax.jit(RNN(LSTMCell(H)).apply)
        bwd = jax.jit(RNN(GRUCell(H)).apply)
        for b, n in enumerate(LENGTHS):
            x_b = x[b : b + 1, :n]  # the sequence alone, no padding at all
            y_f = fwd({"params": params["forward_rnn"]}, x_b)[0]
            y_b = bwd({"params": params["backward_rnn"]}, x_b[:, ::-1])[0, ::-1]
            want = jnp.concatenate([y_f, y_b], -1) if merge == "concat" else y_f + y_b
            np.testing.assert_allclose(y[b, :n], want, rtol=1e-12, atol=1e-14)
            np.testing.assert_array_equal(y[b, n:], 0.0)


def test_stack_without_dropout_is_layers_composed():
    net = StackedRNN(features=H, num_layers=2, cell="gru")
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(1).normal(size=(B, T, D)))
        params = random_params(net, x, train=False)
        lengths = jnp.asarray(LENGTHS)
        y = net.apply({"params": params}, x, train=False, lengths=lengths)
        rnn = RNN(GRUCell(H))
        h = rnn.apply({"params": params["layer0"]}, x, lengths=lengths)
        want = rnn.apply({"params": params["layer1"]}, h, lengths=lengths)
    np.testing.assert_allclose(y, want, rtol=1e-12)


def _dropout_outputs(net, x, seed=0):
    """Runs with train=True and returns (outputs, captured intermediates)."""
    variables = {"params": random_params(net, x, train=False)}
    run = functools.partial(
        net.apply, train=True, capture_intermediates=True, mutable=["intermediates"]
    )
    y, state = jax.jit(run)(variables, x, rngs={"dropout": jax.random.key(seed)})
    return variables, y, state["intermediates"]


def test_plain_dropout_acts_between_layers_only():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(B, T, D)), jnp.float32)
    one = StackedRNN(features=H, num_layers=1, dropout=0.5)
    variables, y, _ = _dropout_outputs(one, x)
    # One layer: nothing lies between layers, so train and eval agree (no input/recurrent drop).
    np.testing.assert_array_equal(
        y, jax.jit(one.apply, static_argnames="train")(variables, x, train=False)
    )
    two = StackedRNN(features=H, num_layers=2, dropout=0.5)
    variables, y, inter = _dropout_outputs(two, x)
    assert not np.allclose(y, two.apply(variables, x, train=False))
    dropped = np.asarray(inter["Dropout_0"]["__call__"][0]) == 0  # [B, T, H]
    # A fresh mask every step: the zero pattern differs across time.
    assert not np.all(dropped == dropped[:, :1])


def test_variational_masks_are_shared_across_time():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(B, T, D)), jnp.float32)
    net = StackedRNN(features=H, num_layers=2, dropout=0.5, recurrent_dropout=0.5, variational=True)
    variables, y, inter = _dropout_outputs(net, x)
    for k in ("Dropout_0", "Dropout_1"):  # layer inputs, first layer included
        dropped = np.asarray(inter[k]["__call__"][0]) == 0
        assert dropped.any()
        np.testing.assert_array_equal(dropped, np.broadcast_to(dropped[:, :1], dropped.shape))
    keeps = inter["h_keep"]
    assert len(keeps) == 2
    for keep in keeps:
        assert keep.shape == (B, H)
        assert set(np.unique(np.asarray(keep))) <= {0.0, 2.0}
    # The recurrent mask is applied inside every step of the layer: rerun layer 1 by hand.
    h_in = inter["Dropout_1"]["__call__"][0]
    rnn = RNN(LSTMCell(H))
    _, want = rnn.apply(
        {"params": variables["params"]["layer1"]}, h_in, h_keep=keeps[1], method="run"
    )
    np.testing.assert_allclose(y, want, rtol=1e-6)
    # Off in evaluation: no masks drawn, output equals the no-dropout network's.
    plain = StackedRNN(features=H, num_layers=2)
    chex.assert_trees_all_close(
        net.apply(variables, x, train=False), plain.apply(variables, x, train=False)
    )


def test_stack_carries_hand_over_between_chunks():
    net = StackedRNN(features=H, num_layers=2)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(B, T, D)), jnp.float32)
    variables = {"params": random_params(net, x, train=False)}
    apply = jax.jit(functools.partial(net.apply, train=False, return_carry=True))
    full_carry, full_y = apply(variables, x)
    chex.assert_trees_all_close(apply(variables, x, carry=net.zero_carry(B)), (full_carry, full_y))
    mid, y1 = apply(variables, x[:, :2])
    end, y2 = apply(variables, x[:, 2:], carry=mid)
    np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), full_y, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(end, full_carry, rtol=1e-5, atol=1e-6)


def test_stack_errors():
    x = jnp.ones((B, T, D))
    cases = [
        (dict(recurrent_dropout=0.2), "recurrent_dropout needs variational=True"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\); got 1.0"),
        (dict(num_layers=0), "num_layers must be >= 1"),
        (dict(bidirectional=True, merge="avg"), "unknown merge 'avg'; valid: concat, sum"),
        (dict(cell="lstn"), "unknown cell 'lstn'"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            StackedRNN(features=H, **kw).init(jax.random.key(0), x, train=False)
    bi = StackedRNN(features=H, bidirectional=True)
    with pytest.raises(ValueError, match=r"carry\[0\] of a bidirectional stack must be a \(fo"):
        bi.init(jax.random.key(0), x, train=False, carry=StackedRNN(features=H).zero_carry(B))


@pytest.mark.parametrize("initial", ["zeros", "given"])
def test_bidirectional_stack_carries_are_each_direction_run_by_hand(initial):
    """Final carries: forward after step L_b - 1, backward after reading step 0, per layer;
    given initial (forward, backward) carries start each direction of each layer. The
    reference runs each sequence alone, unpadded, through the textbook NumPy LSTM."""
    net = StackedRNN(features=H, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(5)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(B, T, D)))
        params = random_params(net, x, train=False)
        start = net.zero_carry(B, jnp.float64)
        carry = None
        if initial == "given":
            carry = jax.tree.map(lambda z: jnp.asarray(rng.normal(size=z.shape)), start)
            start = carry
        apply = jax.jit(functools.partial(net.apply, train=False, return_carry=True))
        finals, y = apply({"params": params}, x, lengths=jnp.asarray(LENGTHS), carry=carry)
    assert len(finals) == 2 and all(isinstance(pair, tuple) for pair in finals)
    h_in = np.asarray(x)
    for layer in range(2):
        p = params[f"layer{layer}"]
        outs = np.zeros((B, T, 2 * H))
        for b, n in enumerate(LENGTHS):
            c_f, c_b = (
                jax.tree.map(lambda a, b=b: np.asarray(a[b : b + 1]), c) for c in start[layer]
            )
            f_final, y_f = np_run("lstm", p["forward_rnn"]["cell"], h_in[b, :n], c_f)
            b_final, y_b = np_run("lstm", p["backward_rnn"]["cell"], h_in[b, :n][::-1], c_b)
            got = jax.tree.map(lambda a, b=b: np.asarray(a[b : b + 1]), finals[layer])
            chex.assert_trees_all_close(got, (f_final, b_final), rtol=1e-12, atol=1e-14)
            outs[b, :n] = np.concatenate([y_f, y_b[::-1]], -1)
        h_in = outs
    np.testing.assert_allclose(y, h_in, rtol=1e-12, atol=1e-14)
