"""What a checkpoint must prove before it is used: its content digest and its structure.

A checkpoint's *content digest* is a SHA-256 over every array leaf of the saved state
(its path, dtype, shape and bytes, in sorted path order) followed by the canonical JSON of
its ``meta`` dict. It is computed from the values being saved, stored in the same atomic
commit, and recomputed from the values a restore returns: any byte that changed on disk
since the commit changes the digest.

The *structure* of a state is the map ``path -> (shape, dtype)`` of its array leaves,
e.g. ``{"params/Dense_0/kernel": ((2, 16), "float32"), ...}``; it can be read from a
checkpoint's stored metadata without loading any value and compared with the state the
current config builds. Nothing here imports orbax.
"""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from dlcore.engine.distributed import host_local

DIGEST_ALGORITHM = "sha256"

Spec = tuple[tuple[int, ...], str]  # (shape, dtype name)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a/b/c": leaf}`` for a tree of nested mappings and sequences; empty containers
    and None contribute nothing (a state dict's ``model_state = {}`` holds no array).

    Example:
      >>> flatten({"params": {"w": 1.0}, "opt": ({"mu": 2.0},), "extra": {}})
      {'opt/0/mu': 2.0, 'params/w': 1.0}
    """
    if isinstance(tree, Mapping):
        items = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(tree)]
    elif tree is None:
        return {}
    else:
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}/{key}" if prefix else key))
    return dict(sorted(out.items()))


def structure(tree: Any) -> dict[str, Spec]:
    """``path -> (shape, dtype)`` of every leaf with a shape and dtype: arrays,
    ``jax.ShapeDtypeStruct`` (from ``jax.eval_shape``) or orbax's array metadata."""
    out = {}
    for path, leaf in flatten(tree).items():
        if not hasattr(leaf, "shape"):
            leaf = np.asarray(leaf)
        out[path] = (tuple(int(d) for d in leaf.shape), np.dtype(leaf.dtype).name)
    return out


def _spec_text(spec: Spec, with_dtype: bool) -> str:
    shape = "[" + ", ".join(str(d) for d in spec[0]) + "]"
    return f"{spec[1]}{shape}" if with_dtype else shape


def structure_differences(stored: dict[str, Spec], expected: dict[str, Spec]) -> list[str]:
    """One phrase per leaf that differs between a checkpoint and the state it should
    restore into: ``"params/Dense_0/kernel [2, 4] in the checkpoint, [2, 8] in the
    config"``. Optimizer-state leaves (``opt_state/...``) mirror the parameters, so when
    parameters differ they are counted rather than listed.

    Returns:
      The phrases, parameters first; empty when the structures agree.
    """
    phrases, optimizer = [], []
    for path in sorted(stored.keys() | expected.keys()):
        old, new = stored.get(path), expected.get(path)
        if old == new:
            continue
        if old is None:
            text = f"{path} missing from the checkpoint, {_spec_text(new, True)} in the config"
        elif new is None:
            text = f"{path} {_spec_text(old, True)} in the checkpoint, not in the config"
        else:
            dtype = old[1] != new[1]
            text = (
                f"{path} {_spec_text(old, dtype)} in the checkpoint, "
                f"{_spec_text(new, dtype)} in the config"
            )
        (optimizer if path.startswith("opt_state/") else phrases).append(text)
    if phrases and optimizer:
        return [*phrases, f"and {len(optimizer)} optimizer-state entries that follow them"]
    return phrases or optimizer


def content_digest(state: Any, meta: dict) -> str:
    """The SHA-256 hex digest of a state tree's arrays and its JSON ``meta``.

    Args:
      state: nested mappings of arrays (``flax.serialization.to_state_dict`` of a state);
        device arrays are copied to the host, gathered from every process when split.
      meta: a JSON-serializable dict; hashed in canonical form (sorted keys), so a dict
        and its JSON round trip hash alike.

    Example:
      >>> a = content_digest({"w": np.zeros(3, np.float32)}, {"step": 1})
      >>> a == content_digest({"w": np.zeros(3, np.float32)}, {"step": 1})
      True
    """
    h = hashlib.new(DIGEST_ALGORITHM)
    leaves = flatten(state)
    # Arrays split over several processes are gathered first: every process hashes the
    # whole state (a collective when it is sharded; see dlcore.engine.distributed).
    values = jax.device_get(host_local(list(leaves.values())))
    for path, leaf in zip(leaves, values, strict=True):
        array = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{path}\0{array.dtype.str}\0{array.shape}\0".encode())
        h.update(array.tobytes())
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()
