"""What the PyTorch race scripts share: threads, LeCun-normal init, accuracy.

dlcore (Flax) initializes every dense and conv kernel with LeCun normal, a normal of
variance ``1 / fan_in`` truncated at two standard deviations (rescaled by 0.8796 so the
truncated draw keeps that variance), and biases with zeros; PyTorch's own default is a
uniform ``(-1/sqrt(fan_in), 1/sqrt(fan_in))``. The race uses dlcore's family everywhere.
"""

import math
import os

import torch
from torch import nn

TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def set_threads() -> int:
    """Intra-op threads: ``RACE_THREADS`` or every core (torch's own default may differ)."""
    threads = int(os.environ.get("RACE_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    return threads


def lecun_normal_(weight: torch.Tensor) -> None:
    """Truncated normal, std ``sqrt(1 / fan_in) / 0.8796``, cut at two of those stds."""
    fan_in = weight[0].numel()  # [out, in, *kernel]: everything but the output axis
    std = math.sqrt(1.0 / fan_in) / TRUNCATED_STD
    nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


def init_lecun(module: nn.Module) -> None:
    """``module.apply(init_lecun)``: LeCun-normal kernels, zero biases (dense and conv)."""
    if isinstance(module, nn.Linear | nn.Conv2d):
        lecun_normal_(module.weight)
        nn.init.zeros_(module.bias)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of arg-max predictions equal to the labels (one batch, eval mode)."""
    model.eval()
    return float((model(x).argmax(-1) == y).float().mean())
