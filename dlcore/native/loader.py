"""Loading the native library once per process and registering its FFI targets with jax.

Availability is decided once: the library is built (or found in the cache), loaded with
``ctypes`` and asked for its oneDNN version. Any failure — no compiler, no oneDNN, a
compile error, ``DLCORE_NATIVE=0`` — makes :func:`available` False and prints one notice
line to stderr (not for the deliberate ``DLCORE_NATIVE=0``); the layers then take their
XLA path. Nothing here raises for ``impl='auto'``; :func:`require` raises for
``impl='native'``.

Which native kernels a process traced is recorded (:func:`record`, :func:`used`) so that
``summary.json`` and ``dlcore list`` can say which implementation ran.
"""

import ctypes
import os
import sys
import threading

import jax
import jax.numpy as jnp

from dlcore.native import build

_LOCK = threading.Lock()
_STATE: dict = {}
_REGISTERED: set[str] = set()
_USED: set[str] = set()


def _threads() -> int:
    if env := os.environ.get("DLCORE_NATIVE_THREADS"):
        return max(1, int(env))
    return len(os.sched_getaffinity(0))


def _load() -> dict:
    if os.environ.get("DLCORE_NATIVE", "1").strip().lower() in ("0", "false", "off", "no"):
        return {"available": False, "reason": "disabled by DLCORE_NATIVE=0", "quiet": True}
    try:
        path = build.library_path()
        if not path.exists():
            print("dlcore: building the native CPU kernels (once per version)", file=sys.stderr)
        path = build.build()
        lib = ctypes.CDLL(str(path))
        lib.dlcore_native_set_threads.argtypes = [ctypes.c_int]
        lib.dlcore_native_set_threads(_threads())
        lib.dlcore_native_onednn_version.restype = ctypes.c_char_p
        version = lib.dlcore_native_onednn_version().decode()
    except (build.BuildError, OSError, AttributeError, ValueError) as err:
        return {"available": False, "reason": str(err).splitlines()[0]}
    return {"available": True, "lib": lib, "library": str(path), "onednn": version}


def _state() -> dict:
    with _LOCK:
        if not _STATE:
            _STATE.update(_load())
            if not _STATE["available"] and not _STATE.get("quiet"):
                print(
                    f"dlcore: native CPU kernels unavailable ({_STATE['reason']}); using XLA",
                    file=sys.stderr,
                )
        return _STATE


def available() -> bool:
    """True when the native library is built, loaded and usable in this process."""
    return _state()["available"]


def status() -> dict:
    """``{"available", "library" | "reason", "onednn", "threads", "used"}`` for reports."""
    state = _state()
    out = {"available": state["available"], "used": used()}
    if state["available"]:
        out.update(library=state["library"], onednn=state["onednn"], threads=_threads())
    else:
        out["reason"] = state["reason"]
    return out


def report() -> dict:
    """What ``summary.json`` records: the kernels traced natively and, if some layer asked,
    whether the library was available (None: no layer needed it, nothing was loaded)."""
    with _LOCK:
        decided = dict(_STATE)
    out: dict = {"used": used(), "available": decided.get("available")}
    if decided.get("available"):
        out.update(onednn=decided["onednn"], threads=_threads())
    elif decided:
        out["reason"] = decided["reason"]
    return out


def library() -> ctypes.CDLL:
    """The loaded library (for plain C helpers such as workspace-size queries)."""
    return require("native kernels")["lib"]


def require(what: str) -> dict:
    """The loaded state, or ValueError naming ``what`` and why native is unavailable."""
    state = _state()
    if not state["available"]:
        raise ValueError(f"{what}: impl='native' is unavailable ({state['reason']})")
    return state


def ensure_targets(names: tuple[str, ...]) -> None:
    """Registers the FFI handlers exported under ``names`` (once each) for the CPU."""
    lib = library()
    with _LOCK:
        for name in names:
            if name not in _REGISTERED:
                capsule = jax.ffi.pycapsule(getattr(lib, name))
                jax.ffi.register_ffi_target(name, capsule, platform="cpu")
                _REGISTERED.add(name)


def auto_native(*arrays: jax.Array) -> bool:
    """What ``impl='auto'`` decides: CPU backend, every array float32, library available."""
    if jax.default_backend() != "cpu":
        return False
    if any(jnp.result_type(a) != jnp.float32 for a in arrays):
        return False
    return available()


def record(kernel: str) -> None:
    """Notes that ``kernel`` was traced with its native implementation in this process."""
    _USED.add(kernel)


def used() -> list[str]:
    """The native kernels traced so far in this process, sorted."""
    return sorted(_USED)
