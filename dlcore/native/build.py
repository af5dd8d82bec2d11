"""Compiling dlcore's native CPU kernels (``csrc/*.cc``) into one shared library.

The kernels call oneDNN (the ``onednn-cpu-gomp`` and ``onednn-devel-cpu-gomp`` wheels put
``libdnnl.so`` under ``<prefix>/lib`` and its headers under ``<prefix>/include``) through
XLA's FFI (headers shipped by jaxlib, :func:`jax.ffi.include_dir`). The library is built
with the system's C++ compiler into a cache directory keyed by a hash of the sources, the
flags, the compiler, jaxlib's and oneDNN's versions, so a changed source or an upgraded
dependency rebuilds and nothing stale is ever loaded. ``make`` builds it at install time
(``python -m dlcore.native build``); otherwise the first use does.

Concurrent builders (pytest workers, several runs) serialise on a lock file; each build
writes to a temporary name and renames it into place, so a reader never sees half a file.
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jax
import jaxlib

CSRC = Path(__file__).parent / "csrc"
LIBRARY_NAME = "libdlcore_native.so"
# -O3 with the host's instruction set would make the cache unshareable between machines; the
# heavy lifting is oneDNN's own JIT-generated code, which picks the ISA at run time anyway.
CXXFLAGS = ("-O2", "-std=c++17", "-fPIC", "-shared", "-fvisibility=hidden", "-fopenmp")


class BuildError(RuntimeError):
    """Why the native library cannot be built (one line, shown as the notice)."""


@dataclass(frozen=True)
class Toolchain:
    """Everything the build depends on; its hash names the cache entry."""

    compiler: str
    compiler_version: str
    onednn_include: Path
    onednn_lib: Path
    onednn_version: str
    ffi_include: Path

    def key(self, sources: list[Path]) -> str:
        digest = hashlib.sha256()
        for part in (
            self.compiler_version,
            self.onednn_version,
            jax.__version__,
            jaxlib.__version__,
            " ".join(CXXFLAGS),
        ):
            digest.update(part.encode() + b"\0")
        for src in sources:
            digest.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
        return digest.hexdigest()[:16]


def cache_root() -> Path:
    """``$DLCORE_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/dlcore/native`` (``~/.cache``)."""
    if env := os.environ.get("DLCORE_NATIVE_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlcore" / "native"


def sources() -> list[Path]:
    """The C++ translation units and headers, in a stable order."""
    return sorted(p for p in CSRC.iterdir() if p.suffix in (".cc", ".h"))


def _find_compiler() -> str:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and (path := shutil.which(name)):
            return path
    raise BuildError("no C++ compiler found (set CXX or install g++)")


def _onednn_version(include: Path) -> str:
    text = (include / "oneapi" / "dnnl" / "dnnl_version.h").read_text()
    fields = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "#define" and parts[1].startswith("DNNL_VERSION_"):
            fields[parts[1].removeprefix("DNNL_VERSION_")] = parts[2].strip('"')
    return "{MAJOR}.{MINOR}.{PATCH}+{HASH}".format(**fields)


def toolchain() -> Toolchain:
    """Finds the compiler, oneDNN and the FFI headers, or raises :class:`BuildError`."""
    prefixes = dict.fromkeys([Path(sys.prefix), Path(sys.base_prefix)])
    for prefix in prefixes:
        include, lib = prefix / "include", prefix / "lib"
        if (include / "oneapi" / "dnnl" / "dnnl.hpp").is_file() and (lib / "libdnnl.so").exists():
            break
    else:
        raise BuildError(
            "oneDNN not found (install the onednn-cpu-gomp and onednn-devel-cpu-gomp wheels)"
        )
    compiler = _find_compiler()
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise BuildError(f"C++ compiler {compiler} does not run: {err}") from None
    ffi_include = Path(jax.ffi.include_dir())
    if not (ffi_include / "xla" / "ffi" / "api" / "ffi.h").is_file():
        raise BuildError(f"XLA FFI headers missing under {ffi_include}")
    return Toolchain(
        compiler=compiler,
        compiler_version=out.stdout.splitlines()[0] if out.stdout else compiler,
        onednn_include=include,
        onednn_lib=lib,
        onednn_version=_onednn_version(include),
        ffi_include=ffi_include,
    )


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def library_path(tools: Toolchain | None = None) -> Path:
    """Where the library for the current sources and toolchain lives (built or not)."""
    tools = tools or toolchain()
    return cache_root() / tools.key(sources()) / LIBRARY_NAME


def build(force: bool = False) -> Path:
    """Builds the library unless the cache has it; returns its path.

    Raises:
      BuildError: no compiler, no oneDNN, or the compiler failed (its last error line).
    """
    tools = toolchain()
    target = library_path(tools)
    if target.exists() and not force:
        return target
    with _locked(target.parent / ".lock"):
        if target.exists() and not force:  # another process built it while we waited
            return target
        units = [str(p) for p in sources() if p.suffix == ".cc"]
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".build-", suffix=".so")
        os.close(fd)
        cmd = [
            tools.compiler,
            *CXXFLAGS,
            f"-I{tools.ffi_include}",
            f"-I{tools.onednn_include}",
            f"-I{CSRC}",
            *units,
            "-o",
            tmp,
            f"-L{tools.onednn_lib}",
            "-ldnnl",
            f"-Wl,-rpath,{tools.onednn_lib}",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
                last = (errors or proc.stderr.splitlines() or ["(no output)"])[-1]
                raise BuildError(f"compiling the native kernels failed: {last.strip()}")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target
