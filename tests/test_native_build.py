"""Building and loading the native kernel library: cache keys, failures, notices.

The failure paths run in real processes with a fresh cache directory, because the loader
decides availability once per process.
"""

import json
import os
import subprocess
import sys

import pytest

from dlcore.native import build, loader
from tests.helpers import REPO

PROBE = (
    "import json\n"
    "from dlcore import native\n"
    "print(json.dumps({'available': native.available(), 'status': native.status()}))\n"
)


def _probe(env_extra: dict, tmp_path) -> tuple[dict, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DLCORE_NATIVE_CACHE": str(tmp_path / "cache"),
        **env_extra,
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_no_compiler_gives_one_notice_and_xla(tmp_path):
    # No compiler on PATH and none named by CXX: the library cannot be built.
    bare = tmp_path / "bin"
    bare.mkdir()
    out, err = _probe({"PATH": str(bare), "CXX": ""}, tmp_path)
    assert out["available"] is False
    assert "no C++ compiler" in out["status"]["reason"]
    notices = [line for line in err.splitlines() if line.strip()]
    assert notices == [
        "dlcore: native CPU kernels unavailable (no C++ compiler found (set CXX or install "
        "g++)); using XLA"
    ]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.so"))


def test_disabled_by_environment_is_quiet(tmp_path):
    out, err = _probe({"DLCORE_NATIVE": "0"}, tmp_path)
    assert out["available"] is False
    assert out["status"]["reason"] == "disabled by DLCORE_NATIVE=0"
    assert err.strip() == ""


def test_compile_error_names_the_failing_line(tmp_path, monkeypatch):
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    (csrc / "broken.cc").write_text("int main() { return undefined_symbol_here; }\n")
    monkeypatch.setattr(build, "CSRC", csrc)
    monkeypatch.setenv("DLCORE_NATIVE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(build.BuildError, match="undefined_symbol_here"):
        build.build()
    # Nothing half-written is left where a later load would find it.
    assert not list((tmp_path / "cache").rglob("*.so"))


def test_cache_key_follows_sources_and_toolchain(tmp_path):
    tools = build.toolchain()
    src = tmp_path / "a.cc"
    src.write_text("int f() { return 1; }\n")
    first = tools.key([src])
    assert tools.key([src]) == first
    src.write_text("int f() { return 2; }\n")
    assert tools.key([src]) != first
    src.write_text("int f() { return 1; }\n")
    other = build.Toolchain(**{**tools.__dict__, "onednn_version": "0.0.0+other"})
    assert other.key([src]) != first


def test_library_loads_and_reports_onednn():
    if not loader.available():
        pytest.skip(f"native kernels unavailable here: {loader.status()['reason']}")
    status = loader.status()
    assert status["onednn"].startswith("3.")
    assert build.library_path().exists()
    assert str(build.library_path()) == status["library"]
