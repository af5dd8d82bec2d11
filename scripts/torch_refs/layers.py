"""PyTorch layers for the weight-import tests (``tests/test_interop.py``).

Every case builds a small float64 PyTorch module with random weights (and random running
statistics for batch norm), runs it on float64 inputs from a fixed NumPy seed and records:

- ``<case>/sd/<torch key>``: the module's ``state_dict`` (``num_batches_tracked`` included);
- ``<case>/x``: the input, in PyTorch's layout (``[B, C, T]``, ``[B, C, H, W]``, ``[B, T, D]``
  batch-first for recurrent layers; int64 ids for embeddings and the language model);
- ``<case>/y``: the output in PyTorch's layout (recurrent layers: the ``[B, T, D*H]`` sequence);
- ``<case>/g``: a random cotangent shaped like ``y``, and ``<case>/dx``: the input gradient
  of ``sum(y * g)`` (none for integer inputs);
- ``<case>/lengths``: valid lengths, for the packed-sequence case (outputs there are padded
  with zeros, as ``pad_packed_sequence`` returns them);
- ``batch_norm_train/mean_after``, ``/var_after``: the running statistics after the training
  forward pass (momentum 0.1, unbiased variance).

Cases: linear, embedding, conv1d (grouped, dilated), conv2d (non-square, strided),
conv_transpose2d (non-square kernel, stride, padding, output padding), batch_norm_eval,
batch_norm_train (BatchNorm2d), layer_norm, rnn (tanh, 2 layers, bidirectional), lstm
(2 layers, bidirectional), lstm_packed (with lengths), lstm_cell (one step; ``x`` is
``[B, D]``, ``h0``/``c0`` the carry, ``y`` is ``h`` and ``c_out`` is ``c``), sequential
(Linear -> BatchNorm1d -> ReLU -> Linear in eval mode) and char_lm (Embedding -> LSTM ->
Linear, logits ``[B, T, V]``).
"""

import zlib

import numpy as np
import torch
from torch import nn

SEED = 15


def _run(case, module, x, out, train=False):
    """Records the state dict, the input, the output and the input gradient of <y, g>."""
    module.train(train)
    sd = {f"{case}/sd/{k}": v.detach().numpy().copy() for k, v in module.state_dict().items()}
    xt = torch.tensor(x)
    if xt.is_floating_point():
        xt.requires_grad_(True)
    y = out(module, xt)
    rng = np.random.default_rng(zlib.crc32(case.encode()))  # a fixed cotangent per case
    g = rng.standard_normal(tuple(y.shape))
    arrays = {**sd, f"{case}/x": x, f"{case}/y": y.detach().numpy(), f"{case}/g": g}
    if xt.is_floating_point():
        (dx,) = torch.autograd.grad(y, xt, torch.tensor(g))
        arrays[f"{case}/dx"] = dx.numpy()
    return arrays


def _randomize(module, rng):
    """Every parameter and float buffer from N(0, 0.5^2) (variances from U(0.5, 1.5))."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.tensor(0.5 * rng.standard_normal(tuple(p.shape))))
        for name, b in module.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.tensor(rng.uniform(0.5, 1.5, tuple(b.shape))))
            elif b.is_floating_point():
                b.copy_(torch.tensor(0.5 * rng.standard_normal(tuple(b.shape))))
    return module


def _seq_out(module, x):
    return module(x)[0]


def make() -> dict[str, np.ndarray]:
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    normal = rng.standard_normal
    arrays = {}

    def case(name, module, x, out=lambda m, x: m(x), train=False):
        arrays.update(_run(name, _randomize(module, rng), x, out, train))

    case("linear", nn.Linear(4, 3), normal((2, 5, 4)))
    case("embedding", nn.Embedding(7, 3), rng.integers(0, 7, (2, 5)))
    case("conv1d", nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), normal((2, 4, 9)))
    case("conv2d", nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0)), normal((2, 3, 6, 5)))
    case(
        "conv_transpose2d",
        nn.ConvTranspose2d(3, 2, (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2)),
        normal((2, 3, 4, 3)),
    )
    case("batch_norm_eval", nn.BatchNorm2d(3), normal((4, 3, 2, 2)))
    bn = _randomize(nn.BatchNorm2d(3), rng)
    arrays.update(_run("batch_norm_train", bn, normal((4, 3, 2, 2)), lambda m, x: m(x), True))
    arrays["batch_norm_train/mean_after"] = bn.running_mean.numpy().copy()
    arrays["batch_norm_train/var_after"] = bn.running_var.numpy().copy()
    case("layer_norm", nn.LayerNorm(5), normal((2, 3, 5)))
    rnn = nn.RNN(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    case("rnn", rnn, normal((2, 5, 3)), _seq_out)
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    case("lstm", lstm, normal((2, 5, 3)), _seq_out)

    lengths = np.array([5, 3])

    def packed(module, x):
        seq = nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=True)
        y, _ = nn.utils.rnn.pad_packed_sequence(module(seq)[0], batch_first=True)
        return y

    lstm = nn.LSTM(3, 4, num_layers=1, bidirectional=True, batch_first=True)
    case("lstm_packed", lstm, normal((2, 5, 3)), packed)
    arrays["lstm_packed/lengths"] = lengths
    h0, c0 = normal((2, 4)), normal((2, 4))
    arrays["lstm_cell/h0"], arrays["lstm_cell/c0"] = h0, c0
    cell_out = {}

    def cell(module, x):
        h, c = module(x, (torch.tensor(h0), torch.tensor(c0)))
        cell_out["c"] = c
        return h

    case("lstm_cell", nn.LSTMCell(3, 4), normal((2, 3)), cell)
    arrays["lstm_cell/c_out"] = cell_out["c"].detach().numpy()
    seq = nn.Sequential(nn.Linear(4, 5, bias=False), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    case("sequential", seq, normal((3, 4)))
    arrays.update(_char_lm(rng))
    return arrays


class CharLM(nn.Module):
    """The language model a PyTorch user would train: embed, LSTM, per-step logits."""

    def __init__(self, vocab: int, embed: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, vocab)

    def forward(self, ids):
        return self.fc(self.lstm(self.embed(ids))[0])


def _char_lm(rng) -> dict[str, np.ndarray]:
    model = _randomize(CharLM(6, 3, 4), rng)
    return _run("char_lm", model, rng.integers(0, 6, (2, 5)), lambda m, x: m(x))
