"""PyTorch ``nn.MultiheadAttention(batch_first=True)`` for ``tests/test_torch_attention.py``.

Every case builds a float64 module with random weights (N(0, 0.5^2), biases included), runs
it in eval mode (``dropout=0``) on float64 queries, keys and values from a fixed NumPy seed and
records, under ``<case>/``:

- ``sd/<torch key>``: the state dict (``in_proj_weight`` or ``q/k/v_proj_weight``,
  ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``);
- ``q``, ``k``, ``v``: the inputs ``[B, T, ·]`` (separate tensors even for self-attention,
  holding the same values, so each gets its own gradient);
- ``key_padding_mask`` ``[B, Tk]`` (bool, PyTorch polarity: True = padding, ignored) and/or
  ``attn_mask`` ``[Tq, Tk]`` (bool with True = not allowed, or float and added), when used;
- ``y`` ``[B, Tq, E]`` and ``w``: the attention weights (``[B, Tq, Tk]`` when averaged,
  ``[B, H, Tq, Tk]`` per head);
- ``gy``, ``gw``: random cotangents, and ``dq``, ``dk``, ``dv``: the input gradients of
  ``sum(y * gy) + sum(w * gw)``.

Cases (``heads``, ``average`` and the shapes are stored too, as ``<case>/num_heads`` and
``<case>/average``): ``self_padding`` (E=6, H=2, key padding, weights averaged),
``self_causal`` (causal boolean mask, per-head weights), ``self_float_mask`` (a float mask:
random values with -inf above the diagonal), ``cross`` (E=6, kdim=5, vdim=3, H=3, Tq=3,
Tk=5, key padding, per-head weights: the separate-projection layout) and ``no_bias``
(``bias=False``, cross-attention with kdim = vdim = E, averaged).
"""

import zlib

import numpy as np
import torch
from torch import nn

SEED = 16


def _case(name, rng, module, q, k, v, *, heads, average, kpm=None, mask=None):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.tensor(0.5 * rng.standard_normal(tuple(p.shape))))
    module.eval()
    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    y, w = module(
        qt,
        kt,
        vt,
        key_padding_mask=None if kpm is None else torch.tensor(kpm),
        attn_mask=None if mask is None else torch.tensor(mask),
        need_weights=True,
        average_attn_weights=average,
    )
    crng = np.random.default_rng(zlib.crc32(name.encode()))  # fixed cotangents per case
    gy, gw = crng.standard_normal(tuple(y.shape)), crng.standard_normal(tuple(w.shape))
    loss = (y * torch.tensor(gy)).sum() + (w * torch.tensor(gw)).sum()
    dq, dk, dv = torch.autograd.grad(loss, (qt, kt, vt))
    out = {f"sd/{k_}": t.detach().numpy().copy() for k_, t in module.state_dict().items()}
    out.update(q=q, k=k, v=v, y=y.detach().numpy(), w=w.detach().numpy(), gy=gy, gw=gw)
    out.update(dq=dq.numpy(), dk=dk.numpy(), dv=dv.numpy())
    out.update(num_heads=np.array(heads), average=np.array(average))
    if kpm is not None:
        out["key_padding_mask"] = kpm
    if mask is not None:
        out["attn_mask"] = mask
    return {f"{name}/{k_}": v_ for k_, v_ in out.items()}


def make() -> dict[str, np.ndarray]:
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    normal = rng.standard_normal
    arrays = {}
    b, t, e = 2, 4, 6
    kpm = np.array([[False, False, False, True], [False, False, False, False]])
    causal = np.triu(np.ones((t, t), bool), k=1)  # True above the diagonal = future, masked

    def self_case(name, heads, average, **masks):
        x = normal((b, t, e))
        mha = nn.MultiheadAttention(e, heads, batch_first=True)
        arrays.update(
            _case(name, rng, mha, x, x.copy(), x.copy(), heads=heads, average=average, **masks)
        )

    self_case("self_padding", 2, True, kpm=kpm)
    self_case("self_causal", 2, False, mask=causal)
    float_mask = np.where(causal, -np.inf, 0.3 * normal((t, t)))
    self_case("self_float_mask", 3, False, mask=float_mask)
    cross = nn.MultiheadAttention(e, 3, batch_first=True, kdim=5, vdim=3)
    kpm5 = np.array([[False, False, True, False, True], [False] * 5])
    arrays.update(
        _case(
            "cross",
            rng,
            cross,
            normal((b, 3, e)),
            normal((b, 5, 5)),
            normal((b, 5, 3)),
            heads=3,
            average=False,
            kpm=kpm5,
        )
    )
    no_bias = nn.MultiheadAttention(e, 2, batch_first=True, bias=False)
    arrays.update(
        _case(
            "no_bias",
            rng,
            no_bias,
            normal((b, 3, e)),
            normal((b, 5, e)),
            normal((b, 5, e)),
            heads=2,
            average=True,
        )
    )
    return arrays
