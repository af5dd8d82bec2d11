"""PyTorch CPU eager versions of the benchmarked models (the optional ``bench`` extra).

Each builder returns a zero-argument training step (forward, backward, Adam) on fixed data, or
raises ImportError when torch is not installed; suites turn that into "not available".
Layouts follow PyTorch's own conventions (NCHW images, ``batch_first`` LSTM), since the point
is torch's speed as a torch user would write the model, not bitwise agreement.
"""

from collections.abc import Callable

import numpy as np


def _torch():
    import torch  # optional dependency: imported on use, never at module import

    return torch


def _adam_step(model, loss_fn, lr: float = 1e-3) -> Callable[[], float]:
    torch = _torch()
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def mlp_step(sizes, x_BxD: np.ndarray, labels_B: np.ndarray):
    """Adam step of an MLP with ReLU hidden layers and cross-entropy."""
    torch = _torch()
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    x, y = torch.from_numpy(x_BxD), torch.from_numpy(labels_B.astype(np.int64))
    return _adam_step(model, lambda: torch.nn.functional.cross_entropy(model(x), y))


def lenet5_step(x_NxHxWx1: np.ndarray, labels_N: np.ndarray):
    """Adam step of LeNet-5 (ReLU, max-pool), same layer sizes as ``numpy_ref.conv``."""
    torch = _torch()
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )
    x = torch.from_numpy(np.ascontiguousarray(x_NxHxWx1.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(labels_N.astype(np.int64))
    return _adam_step(model, lambda: torch.nn.functional.cross_entropy(model(x), y))


def charlm_lstm_step(x_BxTxV: np.ndarray, targets_BxT: np.ndarray, hidden: int):
    """Adam step of ``torch.nn.LSTM`` + linear read-out, full BPTT over the whole sequence."""
    torch = _torch()
    vocab = x_BxTxV.shape[-1]
    lstm = torch.nn.LSTM(vocab, hidden, batch_first=True)
    readout = torch.nn.Linear(hidden, vocab)
    model = torch.nn.ModuleList([lstm, readout])
    x = torch.from_numpy(x_BxTxV)
    y = torch.from_numpy(targets_BxT.astype(np.int64)).reshape(-1)

    def loss():
        h, _ = lstm(x)
        return torch.nn.functional.cross_entropy(readout(h).reshape(-1, vocab), y)

    return _adam_step(model, loss)


class _Additive:
    """Bahdanau attention as a torch module factory (kept out of import time)."""

    @staticmethod
    def build(d_q: int, d_k: int, d_attn: int):
        torch = _torch()

        class Additive(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.q = torch.nn.Linear(d_q, d_attn, bias=False)
                self.k = torch.nn.Linear(d_k, d_attn, bias=True)
                self.w = torch.nn.Linear(d_attn, 1, bias=False)

            def forward(self, q, k, v):
                u = torch.tanh(self.q(q)[:, :, None, :] + self.k(k)[:, None, :, :])
                alpha = torch.softmax(self.w(u)[..., 0], dim=-1)
                return alpha @ v

        return Additive()


def attention_step(q, k, v, target, d_attn: int):
    """Adam step of one additive attention layer against a squared-error target."""
    torch = _torch()
    model = _Additive.build(q.shape[-1], k.shape[-1], d_attn)
    tq, tk, tv, tt = (torch.from_numpy(a) for a in (q, k, v, target))

    def loss():
        return 0.5 * ((model(tq, tk, tv) - tt) ** 2).sum() / tq.shape[0]

    return _adam_step(model, loss)


def resnet_step(x_NxHxWxC: np.ndarray, labels_N: np.ndarray, stages, stem: int):
    """Adam step of the small ResNet of ``numpy_ref.resnet`` (basic blocks, projection
    shortcuts, training-mode batch norm), written as a torch user would."""
    torch = _torch()
    nn = torch.nn

    def conv_bn(c_in, c_out, k, stride):
        return [
            nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(c_out),
        ]

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.branch = nn.Sequential(
                *conv_bn(c_in, c_out, 3, stride), nn.ReLU(), *conv_bn(c_out, c_out, 3, 1)
            )
            project = stride != 1 or c_in != c_out
            self.short = nn.Sequential(*conv_bn(c_in, c_out, 1, stride)) if project else None

        def forward(self, x):
            short = x if self.short is None else self.short(x)
            return torch.relu(self.branch(x) + short)

    layers, width = [*conv_bn(x_NxHxWxC.shape[-1], stem, 3, 1), nn.ReLU()], stem
    for c_out, stride in stages:
        layers.append(Block(width, c_out, stride))
        width = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    model = nn.Sequential(*layers)
    x = torch.from_numpy(np.ascontiguousarray(x_NxHxWxC.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(labels_N.astype(np.int64))
    return _adam_step(model, lambda: torch.nn.functional.cross_entropy(model(x), y))
