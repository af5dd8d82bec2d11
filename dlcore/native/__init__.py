"""Native CPU kernels: oneDNN convolutions and recurrent layers behind XLA's FFI.

:mod:`~dlcore.native.build` compiles ``csrc/`` into a cached shared library,
:mod:`~dlcore.native.loader` loads it and registers the FFI targets; the kernels' jax
wrappers live beside the layers that use them.
"""

from dlcore.native.loader import (
    auto_native,
    available,
    ensure_targets,
    library,
    record,
    report,
    require,
    status,
    used,
)

__all__ = [
    "auto_native",
    "available",
    "ensure_targets",
    "library",
    "record",
    "report",
    "require",
    "status",
    "used",
]
