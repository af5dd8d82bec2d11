"""PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (and ``*Cell``) weights <-> dlcore recurrent cells.

PyTorch computes each gate pre-activation with two biases,

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh,

with gates stacked [i, f, g, o] for the LSTM, the order of :class:`dlcore.recurrent.LSTMCell`.
A dlcore cell holds the input projection as a flax ``Dense`` (``input/kernel`` ``[D, G*H]``,
``input/bias`` ``[G*H]``) and the fused recurrent kernel ``recurrent_kernel`` ``[H, G*H]``:

    input/kernel = W_ih^T,   recurrent_kernel = W_hh^T,   input/bias = b_ih + b_hh.

Only the sum of the two biases reaches the output, so export writes ``b_ih`` = dlcore's bias
and ``b_hh`` = 0: the exported PyTorch module computes the same function.

Which dlcore module the weights go to is read from its variables:

=========================================  ===========================================
dlcore module (its params tree)            PyTorch keys
=========================================  ===========================================
cell (``input``, ``recurrent_kernel``)     ``weight_ih``, ``weight_hh``, ``bias_ih``,
                                           ``bias_hh`` (``nn.LSTMCell`` / ``nn.RNNCell``)
:class:`~dlcore.recurrent.RNN` (``cell``)  the same with suffix ``_l0``
:class:`~dlcore.recurrent.Bidirectional`   ``_l0`` and ``_l0_reverse``
:class:`~dlcore.recurrent.StackedRNN`      ``_l{k}`` (and ``_l{k}_reverse``) for layer k
(``layer0``, ``layer1``, ...)
=========================================  ===========================================

``nn.RNN``'s tanh and ReLU variants have the same weights (pick the dlcore cell
``rnn_tanh`` or ``rnn_relu``).

``nn.GRU`` applies the reset gate after the recurrent matmul,
``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``, so its weights go only to a
:class:`dlcore.recurrent.GRUCell` with ``reset_after=True``, whose ``recurrent_bias`` holds
b_hn (a reset-before cell is refused: no weights make the two forms agree). PyTorch stacks
the gates [r, z, n], dlcore [z, r, n]: blocks r and z are swapped both ways, and

    input/bias = b_ih + [b_hr, b_hz, 0],   recurrent_bias = b_hn   (in PyTorch's r, z, n),

exported as ``b_ih`` = dlcore's input bias and ``b_hh`` = [0, 0, b_hn].
"""

import re

import numpy as np

from dlcore.interop.torch_layers import LayerMap, Tensors, Variables


def _cell_to_dlcore(tensors: Tensors, suffix: str) -> dict:
    w_ih, w_hh = tensors[f"weight_ih{suffix}"], tensors[f"weight_hh{suffix}"]
    bias = tensors[f"bias_ih{suffix}"] + tensors[f"bias_hh{suffix}"]
    return {"input": {"kernel": w_ih.T, "bias": bias}, "recurrent_kernel": w_hh.T}


def _cell_to_torch(cell: dict, suffix: str) -> Tensors:
    bias = np.asarray(cell["input"]["bias"])
    return {
        f"weight_ih{suffix}": np.asarray(cell["input"]["kernel"]).T,
        f"weight_hh{suffix}": np.asarray(cell["recurrent_kernel"]).T,
        f"bias_ih{suffix}": bias,
        f"bias_hh{suffix}": np.zeros_like(bias),
    }


def _swap_rz(a: np.ndarray) -> np.ndarray:
    """Gate blocks [r, z, n] <-> [z, r, n] along axis 0 (its own inverse)."""
    r, z, n = np.split(np.asarray(a), 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def _gru_to_dlcore(tensors: Tensors, suffix: str) -> dict:
    b_hh = tensors[f"bias_hh{suffix}"]
    hidden = b_hh.shape[0] // 3
    bias = tensors[f"bias_ih{suffix}"] + np.concatenate([b_hh[: 2 * hidden], 0 * b_hh[:hidden]])
    return {
        "input": {"kernel": _swap_rz(tensors[f"weight_ih{suffix}"]).T, "bias": _swap_rz(bias)},
        "recurrent_kernel": _swap_rz(tensors[f"weight_hh{suffix}"]).T,
        "recurrent_bias": b_hh[2 * hidden :],
    }


def _gru_to_torch(cell: dict, suffix: str) -> Tensors:
    b_hn = np.asarray(cell["recurrent_bias"])
    return {
        f"weight_ih{suffix}": _swap_rz(np.asarray(cell["input"]["kernel"]).T),
        f"weight_hh{suffix}": _swap_rz(np.asarray(cell["recurrent_kernel"]).T),
        f"bias_ih{suffix}": _swap_rz(cell["input"]["bias"]),
        f"bias_hh{suffix}": np.concatenate([np.zeros_like(b_hn), np.zeros_like(b_hn), b_hn]),
    }


def _layers(params: dict) -> list[tuple[tuple[str, ...], str]]:
    """``(path to a cell's params, PyTorch key suffix)`` for every cell of the module."""
    if "recurrent_kernel" in params:
        return [((), "")]

    def rnn_layer(tree: dict, k: int, at: tuple[str, ...]) -> list:
        if "forward_rnn" in tree:
            return [
                ((*at, "forward_rnn", "cell"), f"_l{k}"),
                ((*at, "backward_rnn", "cell"), f"_l{k}_reverse"),
            ]
        return [((*at, "cell"), f"_l{k}")]

    stacked = sorted(
        (int(m.group(1)), name) for name in params if (m := re.fullmatch(r"layer(\d+)", name))
    )
    if stacked:
        return [cell for k, name in stacked for cell in rnn_layer(params[name], k, (name,))]
    return rnn_layer(params, 0, ())


def _get(tree: dict, path: tuple[str, ...]) -> dict | None:
    for name in path:
        if not isinstance(tree, dict) or name not in tree:
            return None
        tree = tree[name]
    return tree


def _set(tree: dict, path: tuple[str, ...], value: dict) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    if path:
        tree[path[-1]] = value
    else:
        tree.update(value)


def recurrent_to_dlcore(tensors: Tensors, like: Variables, cell_map=_cell_to_dlcore) -> Variables:
    """PyTorch RNN/LSTM tensors -> the params of the dlcore module ``like`` describes."""
    params: dict = {}
    for path, suffix in _layers(like.get("params", {})):
        _set(params, path, cell_map(tensors, suffix))
    return {"params": params}


def recurrent_to_torch(variables: Variables, cell_map=_cell_to_torch) -> Tensors:
    """dlcore recurrent params -> PyTorch tensors (``b_hh = 0``; see the module docstring)."""
    params = variables.get("params", {})
    tensors: Tensors = {}
    for path, suffix in _layers(params):
        cell = _get(params, path)
        if not isinstance(cell, dict) or "recurrent_kernel" not in cell:
            raise ValueError(
                f"no recurrent cell at {'/'.join(path) or 'the module root'}: expected "
                "a dlcore cell, RNN, Bidirectional or StackedRNN"
            )
        tensors.update(cell_map(cell, suffix))
    return tensors


def gru_to_dlcore(tensors: Tensors, like: Variables) -> Variables:
    """PyTorch GRU tensors -> reset-after dlcore GRU params (gates swapped, b_hn kept)."""
    return recurrent_to_dlcore(tensors, like, _gru_to_dlcore)


def gru_to_torch(variables: Variables) -> Tensors:
    """Reset-after dlcore GRU params -> PyTorch tensors; a reset-before cell is refused."""
    params = variables.get("params", {})
    for path, _ in _layers(params):
        cell = _get(params, path)
        if isinstance(cell, dict) and "recurrent_kernel" in cell and "recurrent_bias" not in cell:
            raise ValueError(
                f"the dlcore cell at {'/'.join(path) or '<root>'!r} is a reset-before GRU "
                "(Cho 2014), which no weights make equal to PyTorch's reset-after GRU: build "
                "it with reset_after=True (GRUCell(reset_after=True), "
                "cell_kwargs={'reset_after': True}, TOML model.reset_after = true)"
            )
    return recurrent_to_torch(variables, _gru_to_torch)


RECURRENT_MAPS: dict[str, LayerMap] = {
    "rnn": LayerMap(recurrent_to_dlcore, recurrent_to_torch),
    "lstm": LayerMap(recurrent_to_dlcore, recurrent_to_torch),
    "gru": LayerMap(gru_to_dlcore, gru_to_torch),
}
