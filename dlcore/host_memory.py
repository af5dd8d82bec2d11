"""Host allocator settings that stop XLA's CPU buffers from page-faulting on every step.

XLA on CPU allocates each call's temporary buffers (the stacked LSTM gates, the BPTT
gradients: tens to hundreds of MiB for a char-LM step) with ``malloc`` and frees them when the
call returns. glibc serves blocks that large with a fresh ``mmap`` and gives them back with
``munmap``, so every training step touches brand-new pages: measured here, the H = 512 LSTM
step took ~30,000 minor page faults and ~90 ms of kernel time per call, about a third of the
step. Blocks over 64 MiB requested from XLA's worker threads are mmapped even when mmap is
turned off, because a thread arena cannot hold them, so the arena count matters too.

:func:`keep_freed_memory` asks glibc to (1) never mmap a malloc block, (2) never hand freed
memory back to the kernel, and (3) use one arena for all threads, so the next step reuses the
pages the last one freed. The price is that the process keeps its peak heap until it exits,
which is what a training process does anyway. ``dlcore``'s command line and the benchmark
runner call it at start-up; research code can call it before its first JAX computation.
Set ``DLCORE_HOST_MALLOC=system`` to keep glibc's defaults. On a C library other than glibc
(macOS, musl) it does nothing.
"""

import ctypes
import ctypes.util
import functools
import os

ENV_VAR = "DLCORE_HOST_MALLOC"

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_SETTINGS = (
    ("M_MMAP_MAX", _M_MMAP_MAX, 0),
    ("M_TRIM_THRESHOLD", _M_TRIM_THRESHOLD, 2**31 - 1),
    ("M_ARENA_MAX", _M_ARENA_MAX, 1),
)


@functools.cache
def keep_freed_memory() -> dict[str, int]:
    """Applies the glibc settings above once per process; returns what was applied.

    Call it before the first JAX computation: XLA's worker threads bind to an arena when they
    first allocate, and the arena limit only steers threads that have not allocated yet.

    Returns:
      ``{"M_MMAP_MAX": 0, ...}`` for the settings glibc accepted; empty when the variable
      ``DLCORE_HOST_MALLOC=system`` is set or the C library is not glibc.

    Example:
      >>> applied = keep_freed_memory()
      >>> set(applied) <= {"M_MMAP_MAX", "M_TRIM_THRESHOLD", "M_ARENA_MAX"}
      True
    """
    if os.environ.get(ENV_VAR, "").lower() == "system":
        return {}
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return {}
    return {name: value for name, param, value in _SETTINGS if mallopt(param, value) == 1}


def _glibc_mallopt():
    """glibc's ``mallopt`` as a ctypes function, or None on another C library."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # only glibc has it  # noqa: B018
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt
