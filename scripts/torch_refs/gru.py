"""PyTorch GRUs for the reset-after GRU and its weight import (``tests/test_torch_gru.py``).

PyTorch's GRU (gates r, z, n) computes

    r = σ(W_ir x + b_ir + W_hr h + b_hr),   z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),   h' = (1 − z) ⊙ n + z ⊙ h

Every parameter is drawn from N(0, 0.5^2) (fixed NumPy seed), inputs and cotangents too, all
float64. Keys, per case:

- ``<case>/sd/<torch key>``: the module's ``state_dict``;
- ``<case>/x``: the input (``[B, T, D]`` batch-first; ``[B, D]`` for the cell);
- ``<case>/h0``: the initial state (``[L·2, B, H]`` for ``nn.GRU``, ``[B, H]`` for the cell);
- ``<case>/y``: the output (``[B, T, 2H]``; the new ``h`` ``[B, H]`` for the cell);
- ``<case>/h_n``: the final states ``[L·2, B, H]`` (layer-major, forward before reverse);
- ``<case>/g``, ``<case>/g_h``: cotangents of ``y`` and ``h_n``; ``<case>/dx``, ``<case>/dh0``:
  the gradients of ``sum(y ⊙ g) + sum(h_n ⊙ g_h)`` with respect to ``x`` and ``h0``.

Cases:

- ``gru``: ``nn.GRU(3, 4, num_layers=2, bidirectional=True)`` from ``h0``; also ``y_zero``
  and ``dx_zero``, the output and the input gradient of ``sum(y ⊙ g)`` from a zero state;
- ``gru_packed``: ``nn.GRU(3, 4, bidirectional=True)`` on a packed batch of lengths
  ``<case>/lengths`` = [5, 3] from a zero state (no ``h0``, ``h_n``, ``g_h``, ``dh0``);
  padded outputs are zeros, as ``pad_packed_sequence`` returns them;
- ``gru_cell``: ``nn.GRUCell(3, 4)``, one step from ``h0`` (no ``h_n``, ``g_h``).
"""

import numpy as np
import torch
from torch import nn

from scripts.torch_refs.layers import _randomize

SEED = 16


def _state(case: str, module: nn.Module) -> dict[str, np.ndarray]:
    return {f"{case}/sd/{k}": v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _grads(outputs, cotangents, inputs) -> list[np.ndarray]:
    grads = torch.autograd.grad(outputs, inputs, [torch.tensor(c) for c in cotangents])
    return [g.numpy() for g in grads]


def _gru(rng) -> dict[str, np.ndarray]:
    case = "gru"
    module = _randomize(nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True), rng)
    x_np, h0_np = rng.standard_normal((2, 5, 3)), rng.standard_normal((4, 2, 4))
    x, h0 = torch.tensor(x_np, requires_grad=True), torch.tensor(h0_np, requires_grad=True)
    y, h_n = module(x, h0)
    g, g_h = rng.standard_normal(tuple(y.shape)), rng.standard_normal(tuple(h_n.shape))
    dx, dh0 = _grads((y, h_n), (g, g_h), (x, h0))
    y_zero = module(x)[0]
    (dx_zero,) = _grads((y_zero,), (g,), (x,))
    named = {"x": x_np, "h0": h0_np, "y": y.detach().numpy(), "h_n": h_n.detach().numpy()}
    named |= {"g": g, "g_h": g_h, "dx": dx, "dh0": dh0}
    named |= {"y_zero": y_zero.detach().numpy(), "dx_zero": dx_zero}
    return {**_state(case, module), **{f"{case}/{k}": v for k, v in named.items()}}


def _gru_packed(rng) -> dict[str, np.ndarray]:
    case, lengths = "gru_packed", np.array([5, 3])
    module = _randomize(nn.GRU(3, 4, bidirectional=True, batch_first=True), rng)
    x_np = rng.standard_normal((2, 5, 3))
    x = torch.tensor(x_np, requires_grad=True)
    seq = nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=True)
    y, _ = nn.utils.rnn.pad_packed_sequence(module(seq)[0], batch_first=True)
    g = rng.standard_normal(tuple(y.shape))
    (dx,) = _grads((y,), (g,), (x,))
    named = {"x": x_np, "lengths": lengths, "y": y.detach().numpy(), "g": g, "dx": dx}
    return {**_state(case, module), **{f"{case}/{k}": v for k, v in named.items()}}


def _gru_cell(rng) -> dict[str, np.ndarray]:
    case = "gru_cell"
    module = _randomize(nn.GRUCell(3, 4), rng)
    x_np, h0_np = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    x, h0 = torch.tensor(x_np, requires_grad=True), torch.tensor(h0_np, requires_grad=True)
    y = module(x, h0)
    g = rng.standard_normal(tuple(y.shape))
    dx, dh0 = _grads((y,), (g,), (x, h0))
    named = {"x": x_np, "h0": h0_np, "y": y.detach().numpy(), "g": g, "dx": dx, "dh0": dh0}
    return {**_state(case, module), **{f"{case}/{k}": v for k, v in named.items()}}


def make() -> dict[str, np.ndarray]:
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    return {**_gru(rng), **_gru_packed(rng), **_gru_cell(rng)}
