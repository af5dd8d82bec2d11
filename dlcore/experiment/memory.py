"""Will it fit? Memory estimates checked before a data set or a model is allocated.

A config can ask for arrays no machine holds (``n_samples = 10**12``, ``widths = [10**6,
10**6]``); allocating them ends in a ``MemoryError`` traceback, or the kernel's OOM killer
ends the process. The builder compares estimates with the memory available first, and
the config error says how much was asked for and how much there is:

    model: the parameters, gradients and optimizer state need ~37.2 GiB; 20.1 GiB of
    memory is available

The estimates are rough: generous for generating data, and without activations for the
model. "Available" is the kernel's ``MemAvailable`` (free plus reclaimable cache), capped
by a container's cgroup limit, or an accelerator's free memory for the model when JAX
runs on one.
"""

import os
import pathlib
from typing import Any

import jax

from dlcore.config.errors import FieldError

GiB = 2**30


def host_available_bytes() -> int | None:
    """Host memory a new allocation can get, in bytes; None where it cannot be told."""
    available = _meminfo_available()
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):  # not a POSIX system
            return None
    headroom = _cgroup_headroom()
    return available if headroom is None else min(available, headroom)


def device_available_bytes(device: jax.Device | None = None) -> int | None:
    """Free memory of an accelerator, in bytes; None on the CPU (host memory counts)."""
    device = device or jax.local_devices()[0]
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    if "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def check_fits(field: str, what_needs: str, need: int, available: int | None) -> None:
    """Raises ``FieldError(field, "<what_needs> ~X GiB; Y GiB of memory is available")``
    when ``need`` bytes exceed ``available`` (None: unknown, nothing is checked).

    Example:
      >>> check_fits("model", "it needs", 3 * GiB, 2 * GiB)
      Traceback (most recent call last):
      dlcore.config.errors.FieldError: model: it needs ~3.0 GiB; 2.0 GiB of memory is available
    """
    if available is not None and need > available:
        raise FieldError(
            field,
            f"{what_needs} ~{_size(need)}; {_size(available)} of memory is available",
        )


def check_data(data_cfg: Any) -> None:
    """Refuses a generated data set larger than the host memory, before generating it.

    A ``[data]`` section that can be asked for any size says how many bytes generating it
    takes through ``host_bytes()``; data sets of a fixed, small size need not.
    """
    host_bytes = getattr(data_cfg, "host_bytes", None)
    if host_bytes is not None:
        what = f"generating the {data_cfg.name} data set needs"
        check_fits("data", what, host_bytes(), host_available_bytes())


def state_bytes(task: Any, batch: dict) -> tuple[int, int]:
    """(bytes of the whole train state, bytes of its parameters), from shapes alone:
    ``jax.eval_shape`` traces ``task.init`` without allocating anything."""
    state = jax.eval_shape(task.init, jax.random.PRNGKey(0), batch)
    return _nbytes(state), _nbytes(state.params)


def check_model(field: str, task: Any, batch: dict) -> None:
    """Refuses a train state that cannot fit: parameters, optimizer state and model state,
    plus gradients the size of the parameters (an update holds both at once)."""
    total, params = state_bytes(task, batch)
    available = device_available_bytes()
    if available is None:
        available = host_available_bytes()
    what = "the parameters, gradients and optimizer state need"
    check_fits(field, what, total + params, available)


def _size(nbytes: int) -> str:
    """``37.2 GiB``, ``61.0 MiB``, ``9.8 KiB`` or ``512 bytes``."""
    for unit, name in ((GiB, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if nbytes >= unit:
            return f"{nbytes / unit:.1f} {name}"
    return f"{nbytes} bytes"


def _nbytes(tree: Any) -> int:
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


def _meminfo_available() -> int | None:
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        pass
    return None


# cgroup v2, then v1: (limit, usage, statistics, the reclaimable page cache's name there)
_CGROUPS = (
    ("memory.max", "memory.current", "memory.stat", "inactive_file"),
    (
        "memory/memory.limit_in_bytes",
        "memory/memory.usage_in_bytes",
        "memory/memory.stat",
        "total_inactive_file",
    ),
)


def _cgroup_headroom(root: pathlib.Path = pathlib.Path("/sys/fs/cgroup")) -> int | None:
    """What a container's memory limit still allows, else None. Usage counts page cache,
    so its inactive (reclaimable) part is added back."""
    for limit_file, usage_file, stat_file, cache_key in _CGROUPS:
        try:
            limit = (root / limit_file).read_text().strip()
            usage = int((root / usage_file).read_text())
            stats = dict(line.split() for line in (root / stat_file).read_text().splitlines())
        except (OSError, ValueError):
            continue
        if not limit.isdigit() or int(limit) >= 2**60:  # "max", or v1's "no limit"
            return None
        return max(int(limit) - usage + int(stats.get(cache_key, 0)), 0)
    return None
