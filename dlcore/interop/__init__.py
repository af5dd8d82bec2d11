"""PyTorch interop: load a ``state_dict`` (NumPy arrays or ``.safetensors``) into dlcore
modules and export dlcore variables back to PyTorch names and layouts, without PyTorch."""

from dlcore.interop.safetensors_io import load_safetensors, save_safetensors
from dlcore.interop.state_dict import (
    TORCH_LAYERS,
    load_torch_state_dict,
    read_state_dict,
    torch_state_dict,
)
from dlcore.interop.torch_layers import LayerMap

__all__ = [
    "TORCH_LAYERS",
    "LayerMap",
    "load_safetensors",
    "load_torch_state_dict",
    "read_state_dict",
    "save_safetensors",
    "torch_state_dict",
]
