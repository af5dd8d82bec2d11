"""Host allocator settings that stop XLA's CPU buffers from page-faulting on every step.

XLA on CPU allocates each call's temporary buffers (the stacked LSTM gates, the BPTT
gradients: tens to hundreds of MiB for a char-LM step) with ``malloc`` and frees them when the
call returns. glibc serves blocks that large with a fresh ``mmap`` and gives them back with
``munmap``, so every call touches brand-new pages. Measured here:
- the H = 512 LSTM step took ~30,000 minor page faults and ~90 ms of kernel time per call,
  about a third of the step;
- ``charlm_lstm.toml`` in ``train.mode = "step"`` ran at 8.1 steps/s with glibc's defaults
  and 11.2 with the settings below.
Blocks over 64 MiB requested from XLA's worker threads are mmapped even when mmap is turned
off, because a thread arena cannot hold them, so the arena count matters too.

:func:`keep_freed_memory` asks glibc to (1) never mmap a malloc block, (2) never hand freed
memory back to the kernel, and (3) use one arena for all threads, so the next call reuses the
pages the last one freed.

The cost is memory. The process keeps its heap until it exits, and blocks freed in one order
and requested in another can fragment it. With ``mode = "scan"`` a whole epoch is one XLA call,
so there is nothing to gain, and the peak resident size of ``charlm_lstm.toml`` reached 4.5 GB
in two of four runs against 2.5 GB with glibc's defaults.

So :func:`for_train_mode` applies the settings for per-step training only. ``dlcore``'s
command line calls it, and the benchmark runner (per-step timing) calls
:func:`keep_freed_memory`. Research code that calls a jitted step in a Python loop can call
it before its first JAX computation.

``DLCORE_HOST_MALLOC=system`` never applies the settings; ``DLCORE_HOST_MALLOC=keep`` always
does (also in scan mode). On a C library other than glibc (macOS, musl) nothing is applied.
"""

import ctypes
import ctypes.util
import functools
import os

ENV_VAR = "DLCORE_HOST_MALLOC"
ENV_CHOICES = ("", "auto", "keep", "system")

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_SETTINGS = (
    ("M_MMAP_MAX", _M_MMAP_MAX, 0),
    ("M_TRIM_THRESHOLD", _M_TRIM_THRESHOLD, 2**31 - 1),
    ("M_ARENA_MAX", _M_ARENA_MAX, 1),
)

_applied: dict[str, int] = {}


def env_choice() -> str:
    """``DLCORE_HOST_MALLOC`` lower-cased ("" when unset).

    Raises:
      ValueError: for a value other than auto, keep or system (one line, names the variable).
    """
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value not in ENV_CHOICES:
        raise ValueError(f"{ENV_VAR} must be auto, keep or system; got {value!r}")
    return value


def for_train_mode(mode: str) -> dict[str, int]:
    """Applies the settings when ``mode == "step"`` (or ``DLCORE_HOST_MALLOC=keep``).

    Call it before the first JAX computation of the process.

    Returns:
      The settings applied in this process so far (see :func:`applied`).
    """
    if mode == "step" or env_choice() == "keep":
        return keep_freed_memory()
    return applied()


@functools.cache
def keep_freed_memory() -> dict[str, int]:
    """Applies the glibc settings above once per process; returns what was applied.

    Call it before the first JAX computation: XLA's worker threads bind to an arena when they
    first allocate, and the arena limit only steers threads that have not allocated yet.

    Returns:
      ``{"M_MMAP_MAX": 0, ...}`` for the settings glibc accepted; empty when
      ``DLCORE_HOST_MALLOC=system`` is set or the C library is not glibc.

    Example:
      >>> applied = keep_freed_memory()
      >>> set(applied) <= {"M_MMAP_MAX", "M_TRIM_THRESHOLD", "M_ARENA_MAX"}
      True
    """
    if env_choice() == "system":
        return {}
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return {}
    for name, param, value in _SETTINGS:
        if mallopt(param, value) == 1:
            _applied[name] = value
    return dict(_applied)


def applied() -> dict[str, int]:
    """The settings this process has applied (recorded in each run's ``summary.json``)."""
    return dict(_applied)


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
