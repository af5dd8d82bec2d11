"""PyTorch GRUs imported into reset-after dlcore GRUs, against committed PyTorch results.

``tests/references/torch_gru.npz`` comes from ``scripts/torch_refs/gru.py`` (run by hand with
PyTorch; its docstring lists the keys). Outputs, final states and input/initial-state
gradients must match to 1e-10 in float64. PyTorch is not imported here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.interop import (
    load_safetensors,
    load_torch_state_dict,
    save_safetensors,
    torch_state_dict,
)
from dlcore.recurrent import RNN, GRUCell, StackedRNN
from tests.helpers import REPO

REFS = np.load(REPO / "tests" / "references" / "torch_gru.npz")
TOL = 1e-10
H = 4
AFTER = {"reset_after": True}


def _sd(case: str) -> dict[str, np.ndarray]:
    head = f"{case}/sd/"
    return {k[len(head) :]: REFS[k] for k in REFS.files if k.startswith(head)}


def _ref(case: str, name: str) -> jax.Array:
    return jnp.asarray(REFS[f"{case}/{name}"])


def _close(got, case: str, name: str) -> None:
    np.testing.assert_allclose(np.asarray(got), REFS[f"{case}/{name}"], rtol=0, atol=TOL)


# case -> (dlcore module, call keyword arguments)
MODULES = {
    "gru": (
        lambda: StackedRNN(H, num_layers=2, cell="gru", cell_kwargs=AFTER, bidirectional=True),
        {},
    ),
    "gru_packed": (lambda: StackedRNN(H, cell="gru", cell_kwargs=AFTER, bidirectional=True), {}),
}


def _import(case: str, module, *args, **kwargs):
    like = jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))
    return load_torch_state_dict(_sd(case), {"": ("gru", "")}, like)


def _stack_from(params, x_BxTxD, h0_Lx2xBxH):
    """nn.GRU(num_layers=2, bidirectional=True)(x, h0) from the stack's own RNN layers: a
    dlcore bidirectional stack takes no initial carry, so each direction is run here."""
    h_BxTxD, finals = x_BxTxD, []
    for layer in range(2):
        outs = []
        for d, name in enumerate(("forward_rnn", "backward_rnn")):
            rnn = RNN(GRUCell(H, reset_after=True), reverse=d == 1, return_carry=True)
            carry = {"h": h0_Lx2xBxH[2 * layer + d]}
            final, y = rnn.apply({"params": params[f"layer{layer}"][name]}, h_BxTxD, carry=carry)
            outs.append(y)
            finals.append(final["h"])
        h_BxTxD = jnp.concatenate(outs, axis=-1)
    return h_BxTxD, jnp.stack(finals)


def test_two_layer_bidirectional_gru_with_initial_state_matches_pytorch():
    case = "gru"
    with jax.enable_x64(True):
        x, h0 = _ref(case, "x"), _ref(case, "h0")
        stack, _ = MODULES[case]
        params = _import(case, stack(), x, train=False)["params"]

        @jax.jit  # one compile for the four layers' scans and their transposes
        def with_grads(x, h0, g, g_h):
            (y, h_n), vjp = jax.vjp(lambda x, h0: _stack_from(params, x, h0), x, h0)
            return y, h_n, *vjp((g, g_h))

        y, h_n, dx, dh0 = with_grads(x, h0, _ref(case, "g"), _ref(case, "g_h"))
        # From a zero state, the StackedRNN module itself is nn.GRU.
        y0, vjp0 = jax.vjp(lambda x: stack().apply({"params": params}, x, train=False), x)
        (dx0,) = vjp0(_ref(case, "g"))
    assert y.dtype == jnp.float64
    for got, name in ((y, "y"), (h_n, "h_n"), (dx, "dx"), (dh0, "dh0"), (y0, "y_zero")):
        _close(got, case, name)
    _close(dx0, case, "dx_zero")


def test_packed_bidirectional_gru_matches_pytorch():
    case = "gru_packed"
    with jax.enable_x64(True):
        x, lengths = _ref(case, "x"), _ref(case, "lengths")
        stack = MODULES[case][0]()
        variables = _import(case, stack, x, train=False, lengths=lengths)
        run = lambda x: stack.apply(variables, x, train=False, lengths=lengths)  # noqa: E731
        y, vjp = jax.vjp(run, x)
        (dx,) = vjp(_ref(case, "g"))
    _close(y, case, "y")
    _close(dx, case, "dx")


def test_gru_cell_step_matches_pytorch():
    case = "gru_cell"
    with jax.enable_x64(True):
        cell, x, h0 = GRUCell(H, reset_after=True), _ref(case, "x"), _ref(case, "h0")
        variables = _import(case, cell, {"h": h0}, x)
        (_, h), vjp = jax.vjp(lambda x, h0: cell.apply(variables, {"h": h0}, x), x, h0)
        dx, dh0 = vjp(({"h": jnp.zeros_like(h)}, _ref(case, "g")))
    _close(h, case, "y")
    _close(dx, case, "dx")
    _close(dh0, case, "dh0")


@pytest.mark.parametrize("case", ["gru", "gru_cell"])
def test_reset_before_gru_is_refused_with_the_fix(case):
    if case == "gru":
        module, args = (
            StackedRNN(H, num_layers=2, cell="gru", bidirectional=True),
            (_ref(case, "x"),),
        )
        kwargs = {"train": False}
    else:
        module, args, kwargs = GRUCell(H), ({"h": _ref(case, "h0")}, _ref(case, "x")), {}
    like = jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))
    for attempt in (
        lambda: load_torch_state_dict(_sd(case), {"": ("gru", "")}, like),
        lambda: torch_state_dict(like, {"": ("gru", "")}),
    ):
        with pytest.raises(ValueError, match="reset-before GRU .* reset_after=True") as err:
            attempt()
        assert "\n" not in str(err.value)


def _expected_export(sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch's state dict as dlcore exports it: b_ih + [b_hr, b_hz, 0] and b_hh = [0, 0, b_hn]."""
    out = dict(sd)
    for key in sd:
        if key.startswith("bias_hh"):
            b_hh = sd[key]
            out[key.replace("bias_hh", "bias_ih")] = (
                sd[key.replace("bias_hh", "bias_ih")] + np.r_[b_hh[: 2 * H], np.zeros(H)]
            )
            out[key] = np.r_[np.zeros(2 * H), b_hh[2 * H :]]
    return out


@pytest.mark.parametrize("case", ["gru", "gru_cell"])
def test_export_round_trips_through_safetensors(case, tmp_path):
    if case == "gru":
        module, args, kwargs = MODULES[case][0](), (_ref(case, "x"),), {"train": False}
    else:
        module, args, kwargs = (
            GRUCell(H, reset_after=True),
            ({"h": _ref(case, "h0")}, _ref(case, "x")),
            {},
        )
    variables = _import(case, module, *args, **kwargs)
    path = tmp_path / "gru.safetensors"
    save_safetensors(torch_state_dict(variables, {"": ("gru", "")}), path)
    exported = load_safetensors(path)
    want = _expected_export(_sd(case))
    assert sorted(exported) == sorted(want)
    for key, value in want.items():
        np.testing.assert_allclose(exported[key], value, rtol=0, atol=1e-15, err_msg=key)
    back = load_torch_state_dict(exported, {"": ("gru", "")}, variables)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(variables), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
