"""How one PyTorch layer's tensors become one dlcore (flax) module's variables, and back.

A :class:`LayerMap` holds two pure NumPy functions for one kind of layer:

* ``to_dlcore(tensors, like) -> variables``: PyTorch tensors named as in the layer's own
  ``state_dict`` (``weight``, ``bias``, ``running_mean`` ...) to flax collections
  ``{"params": {...}, "batch_stats": {...}}`` of the dlcore module that owns them. ``like`` is
  that module's variables (from ``init`` or ``jax.eval_shape``): only its tree and shapes are
  read, to know e.g. whether there is a bias.
* ``to_torch(variables) -> tensors``: the inverse, used for export and, applied to ``like``,
  to know which PyTorch keys and shapes the module expects (so errors can name both).

The layouts (PyTorch -> dlcore; O, I output and input channels, G groups):

=================  ============================  ======================================
PyTorch layer      PyTorch tensor                dlcore variable
=================  ============================  ======================================
Linear             weight [out, in], bias [out]  kernel [in, out] (= W^T), bias [out]
Embedding          weight [V, E]                 embedding [V, E]
Conv1d             weight [O, I/G, K]            kernel [K, I/G, O]
Conv2d             weight [O, I/G, KH, KW]       kernel [KH, KW, I/G, O]
ConvTranspose2d    weight [I, O, KH, KW]         kernel [KH, KW, O, I] (no flip)
BatchNorm1d/2d     weight, bias,                 params scale, bias;
                   running_mean, running_var     batch_stats mean, var
LayerNorm          weight, bias (last axis)      scale, bias
=================  ============================  ======================================

Both frameworks compute cross-correlations, so convolution kernels are only permuted. A
``ConvTranspose2d`` weight is the kernel of the convolution it is the adjoint of, which is what
:class:`dlcore.layers.ConvTranspose2D` stores too. ``num_batches_tracked`` has no dlcore
counterpart: it is read and dropped, and exported as 0 (it only matters to PyTorch's
``momentum=None`` cumulative average).
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

Tensors = dict[str, np.ndarray]
Variables = dict[str, dict[str, Any]]


class LayerMap(NamedTuple):
    """The two directions for one kind of PyTorch layer (see the module docstring).

    Attributes:
      to_dlcore: ``(tensors, like) -> variables``.
      to_torch: ``variables -> tensors``.
      owner_leaf: a parameter the owning module holds directly (e.g. ``"kernel"``); a dlcore
        wrapper such as :class:`dlcore.layers.BatchNorm`, which keeps its variables in one
        submodule, is entered until this name appears. None: the tree is read as it is.
      dropped: PyTorch keys that are accepted on import and carry nothing over.
      exported: constant PyTorch tensors written on export for the dropped keys.
    """

    to_dlcore: Callable[[Tensors, Variables], Variables]
    to_torch: Callable[[Variables], Tensors]
    owner_leaf: str | None = None
    dropped: tuple[str, ...] = ()
    exported: Mapping[str, np.ndarray] = {}


def _params(like: Variables) -> dict[str, Any]:
    return like.get("params", {})


def _with_bias(out: dict, tensors: Tensors, like: Variables) -> dict:
    """Adds ``bias`` when the dlcore module has one (``use_bias=False`` has none)."""
    if "bias" in _params(like):
        out["bias"] = tensors["bias"]
    return out


def _bias_out(variables: Variables, tensors: Tensors) -> Tensors:
    if "bias" in _params(variables):
        tensors["bias"] = np.asarray(variables["params"]["bias"])
    return tensors


# ----------------------------------------------------------------------------- dense


def linear_to_dlcore(tensors: Tensors, like: Variables) -> Variables:
    """``nn.Linear`` -> flax ``Dense``: kernel = W^T, so that y = x kernel + b = x W^T + b."""
    return {"params": _with_bias({"kernel": tensors["weight"].T}, tensors, like)}


def linear_to_torch(variables: Variables) -> Tensors:
    return _bias_out(variables, {"weight": np.asarray(variables["params"]["kernel"]).T})


def embedding_to_dlcore(tensors: Tensors, like: Variables) -> Variables:
    """``nn.Embedding`` -> flax ``Embed``: the same ``[V, E]`` table."""
    return {"params": {"embedding": tensors["weight"]}}


def embedding_to_torch(variables: Variables) -> Tensors:
    return {"weight": np.asarray(variables["params"]["embedding"])}


# ----------------------------------------------------------------------------- convolutions


def _torch_to_hwio(w: np.ndarray) -> np.ndarray:
    """[O, I, *K] -> [*K, I, O] for any number of spatial axes."""
    n = w.ndim - 2
    return np.transpose(w, (*range(2, n + 2), 1, 0))


def _hwio_to_torch(w: np.ndarray) -> np.ndarray:
    """[*K, I, O] -> [O, I, *K]."""
    n = w.ndim - 2
    return np.transpose(w, (n + 1, n, *range(n)))


def conv_to_dlcore(tensors: Tensors, like: Variables) -> Variables:
    """``nn.Conv1d`` / ``nn.Conv2d`` -> :class:`dlcore.layers.Conv1D` / ``Conv2D``."""
    return {"params": _with_bias({"kernel": _torch_to_hwio(tensors["weight"])}, tensors, like)}


def conv_to_torch(variables: Variables) -> Tensors:
    kernel = np.asarray(variables["params"]["kernel"])
    return _bias_out(variables, {"weight": _hwio_to_torch(kernel)})


# PyTorch's ConvTranspose2d weight [I, O, KH, KW] -> dlcore's [KH, KW, O, I] and back.
_TRANSPOSE_AXES = (2, 3, 1, 0)
_TRANSPOSE_BACK = tuple(int(a) for a in np.argsort(_TRANSPOSE_AXES))


def conv_transpose_to_dlcore(tensors: Tensors, like: Variables) -> Variables:
    """``nn.ConvTranspose2d`` -> :class:`dlcore.layers.ConvTranspose2D` (axes permuted only)."""
    kernel = np.transpose(tensors["weight"], _TRANSPOSE_AXES)
    return {"params": _with_bias({"kernel": kernel}, tensors, like)}


def conv_transpose_to_torch(variables: Variables) -> Tensors:
    kernel = np.asarray(variables["params"]["kernel"])
    return _bias_out(variables, {"weight": np.transpose(kernel, _TRANSPOSE_BACK)})


# ----------------------------------------------------------------------------- normalization


def batch_norm_to_dlcore(tensors: Tensors, like: Variables) -> Variables:
    """``nn.BatchNorm1d/2d`` -> flax's names: γ, β as params, running averages as batch_stats.

    dlcore's eval mode uses the running averages as PyTorch's ``eval()`` does; in train mode
    both normalize with the biased batch variance. To update the running averages as PyTorch
    does, build the dlcore layer with ``momentum = 1 - torch_momentum`` and
    ``unbiased_running_var=True``.
    """
    return {
        "params": {"scale": tensors["weight"], "bias": tensors["bias"]},
        "batch_stats": {"mean": tensors["running_mean"], "var": tensors["running_var"]},
    }


def batch_norm_to_torch(variables: Variables) -> Tensors:
    p, s = variables["params"], variables["batch_stats"]
    return {
        "weight": np.asarray(p["scale"]),
        "bias": np.asarray(p["bias"]),
        "running_mean": np.asarray(s["mean"]),
        "running_var": np.asarray(s["var"]),
    }


def layer_norm_to_dlcore(tensors: Tensors, like: Variables) -> Variables:
    """``nn.LayerNorm(normalized_shape=D)`` -> flax ``LayerNorm``: γ = scale, β = bias."""
    return {"params": {"scale": tensors["weight"], "bias": tensors["bias"]}}


def layer_norm_to_torch(variables: Variables) -> Tensors:
    p = variables["params"]
    return {"weight": np.asarray(p["scale"]), "bias": np.asarray(p["bias"])}


LAYER_MAPS: dict[str, LayerMap] = {
    "linear": LayerMap(linear_to_dlcore, linear_to_torch, "kernel"),
    "embedding": LayerMap(embedding_to_dlcore, embedding_to_torch, "embedding"),
    "conv1d": LayerMap(conv_to_dlcore, conv_to_torch, "kernel"),
    "conv2d": LayerMap(conv_to_dlcore, conv_to_torch, "kernel"),
    "conv_transpose2d": LayerMap(conv_transpose_to_dlcore, conv_transpose_to_torch, "kernel"),
    "batch_norm": LayerMap(
        batch_norm_to_dlcore,
        batch_norm_to_torch,
        "scale",
        dropped=("num_batches_tracked",),
        exported={"num_batches_tracked": np.array(0, np.int64)},
    ),
    "layer_norm": LayerMap(layer_norm_to_dlcore, layer_norm_to_torch, "scale"),
}
