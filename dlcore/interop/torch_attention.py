"""PyTorch ``nn.MultiheadAttention`` weights <-> :class:`dlcore.layers.MultiHeadAttention`.

PyTorch projects with ``x W^T + b`` and keeps the three input projections packed when the key
and value widths equal E (``kdim == vdim == embed_dim``), separate otherwise; the biases are
always packed. dlcore keeps four ``[in, out]`` kernels:

======================================  ==============================================
PyTorch key (shape)                     dlcore param (shape)
======================================  ==============================================
``in_proj_weight`` [3E, E]              ``Wq, Wk, Wv`` = rows [0:E], [E:2E], [2E:3E], ^T
``q_proj_weight`` [E, E],               ``Wq`` [E, E], ``Wk`` [kdim, E], ``Wv`` [vdim, E]
``k_proj_weight`` [E, kdim],            (= each weight ^T; used when kdim or vdim != E)
``v_proj_weight`` [E, vdim]
``in_proj_bias`` [3E]                   ``bq, bk, bv`` [E] (split in three)
``out_proj.weight`` [E, E]              ``Wo`` [E, E] (= ^T)
``out_proj.bias`` [E]                   ``bo`` [E]
======================================  ==============================================

Which layout is expected (and exported) follows the dlcore shapes: packed exactly when
``Wk`` and ``Wv`` are ``[E, E]``, as PyTorch decides. ``bias=False`` (no biases in either)
maps to ``use_bias=False``. Not carried by a state dict, so the user must match them:
``num_heads`` (the same weights with other heads are another function), ``dropout`` and
``add_zero_attn`` (not supported). ``add_bias_kv`` (``bias_k``, ``bias_v``) is not supported
and is refused as unexpected keys.
"""

import numpy as np

from dlcore.interop.torch_layers import LayerMap, Tensors, Variables

_PROJ = ("Wq", "Wk", "Wv")
_BIAS = ("bq", "bk", "bv")


def _packed(params: dict) -> bool:
    """PyTorch's ``_qkv_same_embed_dim``: key and value widths equal E."""
    e = np.shape(params["Wq"])[1]
    return np.shape(params["Wk"]) == (e, e) and np.shape(params["Wv"]) == (e, e)


def mha_to_dlcore(tensors: Tensors, like: Variables) -> Variables:
    """``nn.MultiheadAttention`` tensors -> ``{"params": {"Wq", ..., "bo"}}``."""
    target = like.get("params", {})
    if _packed(target):
        w = tensors["in_proj_weight"]
        e = w.shape[1]
        kernels = {n: w[i * e : (i + 1) * e].T for i, n in enumerate(_PROJ)}
    else:
        kernels = {n: tensors[f"{n[1]}_proj_weight"].T for n in _PROJ}
    params = {**kernels, "Wo": tensors["out_proj.weight"].T}
    if "bq" in target:
        b = tensors["in_proj_bias"]
        e = b.shape[0] // 3
        params.update({n: b[i * e : (i + 1) * e] for i, n in enumerate(_BIAS)})
        params["bo"] = tensors["out_proj.bias"]
    return {"params": params}


def mha_to_torch(variables: Variables) -> Tensors:
    """dlcore :class:`~dlcore.layers.MultiHeadAttention` params -> PyTorch tensors."""
    p = {k: np.asarray(v) for k, v in variables["params"].items()}
    if _packed(p):
        out = {"in_proj_weight": np.concatenate([p[n].T for n in _PROJ], axis=0)}
    else:
        out = {f"{n[1]}_proj_weight": p[n].T for n in _PROJ}
    out["out_proj.weight"] = p["Wo"].T
    if "bq" in p:
        out["in_proj_bias"] = np.concatenate([p[n] for n in _BIAS])
        out["out_proj.bias"] = p["bo"]
    return out


ATTENTION_MAPS: dict[str, LayerMap] = {
    "multihead_attention": LayerMap(mha_to_dlcore, mha_to_torch, "Wq"),
}
