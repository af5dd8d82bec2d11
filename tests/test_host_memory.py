"""dlcore.host_memory: glibc malloc settings applied once per process, with an opt-out."""

import json
import os
import platform
import subprocess
import sys

import pytest

PROBE = "import json; from dlcore import host_memory as m; print(json.dumps(m.keep_freed_memory()))"

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def _python(code: str, **env) -> str:
    """stdout of ``python -c code`` in a fresh process (the settings are per process)."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def _probe(**env) -> dict:
    return json.loads(_python(PROBE, **env))


@glibc_only
def test_glibc_accepts_every_setting():
    applied = _probe(DLCORE_HOST_MALLOC="")
    assert applied == {"M_MMAP_MAX": 0, "M_TRIM_THRESHOLD": 2**31 - 1, "M_ARENA_MAX": 1}


def test_system_opt_out_applies_nothing():
    assert _probe(DLCORE_HOST_MALLOC="system") == {}


@glibc_only
@pytest.mark.parametrize(
    "mode, env, applies",
    [("step", "", True), ("scan", "", False), ("scan", "keep", True), ("step", "system", False)],
)
def test_training_mode_decides_unless_the_variable_does(mode, env, applies):
    code = (
        "import json; from dlcore import host_memory as m; "
        f"print(json.dumps(m.for_train_mode({mode!r})))"
    )
    assert bool(json.loads(_python(code, DLCORE_HOST_MALLOC=env))) is applies


def test_a_bad_variable_value_is_a_one_line_cli_error():
    from tests.helpers import run_cli

    proc = run_cli("list", env={"DLCORE_HOST_MALLOC": "sometimes"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: DLCORE_HOST_MALLOC must be auto, keep or system; got 'sometimes'"
    )


@glibc_only
def test_large_blocks_are_reused_instead_of_faulted_in_again():
    """With the settings, freeing and re-allocating 64 MiB touches no new pages."""
    code = """
import ctypes, resource
from dlcore import host_memory
host_memory.keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
size = 64 << 20
def touch():
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    libc.free(p)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    faults = {}
    for mode in ("", "system"):
        faults[mode or "dlcore"] = int(_python(code, DLCORE_HOST_MALLOC=mode))
    pages = (64 << 20) // 4096
    assert faults["system"] > pages // 2  # glibc mmaps the block afresh: every page faults
    assert faults["dlcore"] < pages // 20  # kept on the heap: the same pages again
