"""A whole PyTorch ``state_dict`` <-> a dlcore model's variables, layer by layer by a mapping.

The mapping names, for each PyTorch submodule prefix, the kind of layer and the path of the
dlcore module that takes its weights::

    mapping = {
        "embed": ("embedding", "Embed_0"),     # model.embed.weight -> params/Embed_0/embedding
        "lstm": ("lstm", "StackedRNN_0"),      # model.lstm.weight_ih_l0 -> .../layer0/cell/...
        "fc": ("linear", "head"),
    }
    variables = load_torch_state_dict(state_dict, mapping, like=model.init(key, x, train=False))

The prefix ``""`` maps a lone layer's own ``state_dict`` (keys ``weight``, ``bias``); the path
``""`` is the root of ``like``. ``like`` supplies the tree and the shapes (values are not read,
so ``jax.eval_shape`` output works too); every PyTorch tensor is checked against the shape the
dlcore module expects before anything is converted, and the result keeps the state dict's
dtype (float64 weights stay float64; jax needs ``jax_enable_x64`` to compute in it).
"""

import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from dlcore.checks import check_choice
from dlcore.interop.safetensors_io import load_safetensors
from dlcore.interop.torch_attention import ATTENTION_MAPS
from dlcore.interop.torch_layers import LAYER_MAPS, LayerMap, Tensors, Variables
from dlcore.interop.torch_recurrent import RECURRENT_MAPS

TORCH_LAYERS: dict[str, LayerMap] = {**LAYER_MAPS, **RECURRENT_MAPS, **ATTENTION_MAPS}

LayerSpec = tuple[str, str]  # (kind in TORCH_LAYERS, dlcore module path "a/b")
StateDictLike = Mapping[str, Any] | str | os.PathLike


def _plain(tree: Any) -> Any:
    """FrozenDicts and other mappings -> dicts (leaves untouched)."""
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def _leaves(tree: Any, at: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from _leaves(v, (*at, k))
    else:
        yield at, tree


def _shapes_only(tree: Any) -> Any:
    """The same tree with zero-cost all-zero arrays: enough for ``to_torch`` to give shapes."""
    if isinstance(tree, Mapping):
        return {k: _shapes_only(v) for k, v in tree.items()}
    return np.broadcast_to(np.zeros((), np.float32), tuple(tree.shape))


def _module(variables: Variables, path: str, layer: LayerMap) -> tuple[Variables, tuple]:
    """The collections' subtrees at ``path`` and the path as a tuple, entering single-child
    wrappers until ``layer.owner_leaf`` is there (see :class:`LayerMap`)."""
    parts = tuple(p for p in path.split("/") if p)
    sub: Variables = {}
    for collection, tree in variables.items():
        for name in parts:
            tree = tree.get(name) if isinstance(tree, Mapping) else None
        if isinstance(tree, Mapping):
            sub[collection] = tree
    if not sub:
        where, seen = variables.get("params", {}), []
        for name in parts:  # down to the deepest level that exists, to list what is there
            if not isinstance(where, Mapping) or name not in where:
                break
            where, seen = where[name], [*seen, name]
        names = sorted(where) if isinstance(where, Mapping) else []
        raise ValueError(
            f"dlcore path {path!r} is not in the model; params under "
            f"{'/'.join(seen) or '<root>'!r}: {', '.join(names) or 'none'}"
        )
    while layer.owner_leaf and layer.owner_leaf not in sub.get("params", {}):
        children = {name for tree in sub.values() for name in tree}
        if len(children) != 1:
            break
        (child,) = children
        if not all(isinstance(tree.get(child), Mapping) for tree in sub.values()):
            break
        sub, parts = {c: tree[child] for c, tree in sub.items()}, (*parts, child)
    return sub, parts


def _layer(kind: str) -> LayerMap:
    check_choice(kind, TORCH_LAYERS, "PyTorch layer kind")
    return TORCH_LAYERS[kind]


def _to_torch(layer: LayerMap, sub: Variables, kind: str, path: str) -> Tensors:
    try:
        return layer.to_torch(sub)
    except KeyError as missing:
        raise ValueError(
            f"dlcore module {path or '<root>'!r} has no variable {missing} that a PyTorch "
            f"{kind} has (pass every collection, e.g. params and batch_stats)"
        ) from None


def read_state_dict(source: StateDictLike) -> dict[str, np.ndarray]:
    """A ``state_dict`` as NumPy arrays: a mapping of arrays or a ``.safetensors`` path."""
    if isinstance(source, str | os.PathLike):
        return load_safetensors(source)
    return {str(k): np.asarray(v) for k, v in source.items()}


def _check_prefixes(mapping: Mapping[str, LayerSpec]) -> None:
    """Refuses nested prefixes ("" and "fc", or "enc" and "enc.0"): one key, one layer."""
    heads = sorted(f"{p}." if p else "" for p in mapping)
    for outer, inner in zip(heads, heads[1:], strict=False):
        if inner.startswith(outer):
            raise ValueError(
                f"mapping prefixes {outer[:-1]!r} and {inner[:-1]!r} overlap: the keys under "
                f"{inner[:-1]!r} would go to two layers; map each PyTorch layer once"
            )


def _keys_line(keys: list[str]) -> str:
    return ", ".join(repr(k) for k in keys)


def load_torch_state_dict(
    source: StateDictLike,
    mapping: Mapping[str, LayerSpec],
    like: Variables,
    *,
    strict: bool = True,
) -> Variables:
    """dlcore variables (``{"params": ..., "batch_stats": ...}``) from a PyTorch state dict.

    Args:
      source: ``{name: array}`` (e.g. ``{k: v.numpy() for k, v in m.state_dict().items()}``)
        or the path of a ``.safetensors`` file.
      mapping: PyTorch prefix -> ``(kind, dlcore path)``; kinds are the keys of
        :data:`TORCH_LAYERS` (module docstring).
      like: the dlcore model's variables or their shapes (``init`` / ``jax.eval_shape``).
      strict: also refuse PyTorch keys no prefix claims and dlcore variables no key sets
        (otherwise the former are ignored and the latter keep ``like``'s values).

    Returns:
      A tree like ``like`` holding NumPy arrays in the state dict's dtype.

    Raises:
      ValueError: one line naming the PyTorch key(s) and dlcore path, and for a shape
        mismatch both shapes (PyTorch's layout).
    """
    _check_prefixes(mapping)
    state = read_state_dict(source)
    like = _plain(like)
    out = {c: dict(_leaves(tree)) for c, tree in like.items()}  # flat, written in place
    filled: set[tuple[str, tuple[str, ...]]] = set()
    claimed: set[str] = set()
    for prefix, (kind, path) in mapping.items():
        layer = _layer(kind)
        sub, parts = _module(like, path, layer)
        where = f"dlcore {'/'.join(parts) or '<root>'!r} ({kind})"
        expected = _to_torch(layer, _shapes_only(sub), kind, path)
        head = f"{prefix}." if prefix else ""
        given = {k[len(head) :]: v for k, v in state.items() if k.startswith(head)}
        claimed.update(head + k for k in given)
        missing = sorted(set(expected) - set(given))
        unexpected = sorted(set(given) - set(expected) - set(layer.dropped))
        if missing:
            raise ValueError(
                f"missing PyTorch key(s) {_keys_line([head + k for k in missing])} for {where}"
            )
        if unexpected:
            raise ValueError(
                f"unexpected PyTorch key(s) {_keys_line([head + k for k in unexpected])} "
                f"for {where}, which takes {_keys_line(sorted(head + k for k in expected))}"
            )
        for k, want in expected.items():
            if given[k].shape != want.shape:
                raise ValueError(
                    f"PyTorch key {head + k!r} has shape {tuple(given[k].shape)} but {where} "
                    f"expects {tuple(want.shape)}"
                )
        converted = layer.to_dlcore({k: given[k] for k in expected}, sub)
        for collection, tree in converted.items():
            for leaf_path, value in _leaves(tree):
                full = (*parts, *leaf_path)
                target = out.get(collection, {}).get(full)
                name = "/".join((collection, *full))
                if target is None or tuple(target.shape) != value.shape:
                    got = "absent" if target is None else tuple(target.shape)
                    raise ValueError(
                        f"{where}: {name} would get shape {value.shape} but the model has {got}"
                    )
                out[collection][full] = np.ascontiguousarray(value)
                filled.add((collection, full))
    if strict:
        unclaimed = sorted(set(state) - claimed)
        if unclaimed:
            raise ValueError(
                f"unexpected PyTorch key(s) {_keys_line(unclaimed)}: no prefix in the mapping "
                "claims them (map them, or pass strict=False to ignore them)"
            )
        unset = sorted(
            "/".join((c, *p)) for c, flat in out.items() for p in flat if (c, p) not in filled
        )
        if unset:
            raise ValueError(
                f"dlcore variable(s) {_keys_line(unset)} get no PyTorch tensor (map them, or "
                "pass strict=False to keep like's values)"
            )
    return {c: _unflatten(flat) for c, flat in out.items()}


def _unflatten(flat: dict[tuple[str, ...], Any]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    return tree


def torch_state_dict(
    variables: Variables, mapping: Mapping[str, LayerSpec]
) -> dict[str, np.ndarray]:
    """The PyTorch ``state_dict`` (NumPy arrays) of dlcore variables: the inverse of
    :func:`load_torch_state_dict` for the same mapping.

    Load it into PyTorch with ``module.load_state_dict({k: torch.from_numpy(v) ...})``.
    Recurrent biases go to ``bias_ih`` (``bias_hh`` = 0); ``num_batches_tracked`` is 0.

    Raises:
      ValueError: for a path not in ``variables`` or a module lacking a variable.
    """
    _check_prefixes(mapping)
    variables = _plain(variables)
    out: dict[str, np.ndarray] = {}
    for prefix, (kind, path) in mapping.items():
        layer = _layer(kind)
        sub, _ = _module(variables, path, layer)
        head = f"{prefix}." if prefix else ""
        tensors = {**_to_torch(layer, sub, kind, path), **layer.exported}
        out.update({head + k: np.ascontiguousarray(v) for k, v in tensors.items()})
    return out
