"""``.safetensors`` files as dicts of NumPy arrays, through the ``safetensors`` package.

The format (a JSON header of names, dtypes, shapes and offsets, then raw little-endian
bytes) is what ``torch``'s ``safetensors.torch.save_file(model.state_dict(), path)`` writes;
reading it with the NumPy API needs no PyTorch. bfloat16 tensors have no NumPy dtype and are
refused by the package.
"""

import os
from collections.abc import Mapping

import numpy as np


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file, by name.

    Raises:
      FileNotFoundError: naming the path.
    """
    from safetensors.numpy import load_file  # a small package: imported where it is used

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no safetensors file at {os.fspath(path)!r}")
    return load_file(os.fspath(path))


def save_safetensors(
    tensors: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Writes ``tensors`` (e.g. :func:`dlcore.interop.torch_state_dict`'s) to ``path``."""
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    save_file(arrays, os.fspath(path), metadata=dict(metadata) if metadata else None)
