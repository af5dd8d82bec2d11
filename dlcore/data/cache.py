"""Built data sets kept on disk between processes, for those slow to build.

The digits come from scikit-learn, whose import takes most of a second (SciPy with it),
and their ``standardize`` statistics are computed with JAX operations that compile on a
fresh process: together longer than the default experiment's training. The data set a
config builds is a pure function of that config, the code that builds it and the
versions of the packages it uses, so its arrays are written once to
``<directory>/<key>.npz`` and read back (bit-identical: the run's ``dataset.json``
fingerprint is the same) by later processes. ``key`` is a SHA-256 over the
``[data]`` section, the source files of ``dlcore/data/``, and the versions of Python,
NumPy, JAX, jaxlib and scikit-learn; any change builds (and writes) it afresh.

Off unless enabled (:func:`enable`; the ``dlcore`` command calls :func:`enable_default`:
``$DLCORE_DATA_CACHE``, default ``~/.cache/dlcore/data``; an empty value turns it off).
A cache that cannot be read or written is ignored: the data set is then built.
"""

import hashlib
import importlib.metadata
import json
import os
import pathlib
import sys
import tempfile
from collections.abc import Callable

import numpy as np

from dlcore.data.dataset import SPLITS, Dataset, Split

CACHED = ("digits",)  # the data sets slower to build than to read back
_PACKAGES = ("numpy", "jax", "jaxlib", "scikit-learn")
_META = "__dataset__"  # the npz entry holding name, num_classes, info, roles as JSON
_directory: pathlib.Path | None = None


DEFAULT_DIRECTORY = pathlib.Path.home() / ".cache" / "dlcore" / "data"


def enable(directory: str | pathlib.Path | None) -> None:
    """Caches data sets under ``directory`` from now on (None or "" turns it off)."""
    global _directory
    _directory = pathlib.Path(directory) if directory else None


def enable_default() -> None:
    """:func:`enable` at ``$DLCORE_DATA_CACHE`` (default :data:`DEFAULT_DIRECTORY`)."""
    enable(os.environ.get("DLCORE_DATA_CACHE", str(DEFAULT_DIRECTORY)))


def _key(section_json: str) -> str:
    h = hashlib.sha256(section_json.encode())
    h.update(sys.version.encode())
    for package in _PACKAGES:
        try:
            h.update(f"{package}={importlib.metadata.version(package)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{package}=none".encode())
    for source in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        h.update(source.name.encode() + source.read_bytes())
    return h.hexdigest()


def _meta(data: Dataset) -> str | None:
    """The non-array parts as JSON, or None when JSON would not give them back equal
    (a tuple, a NumPy scalar) or an array is not plain numbers."""
    meta = {k: getattr(data, k) for k in ("name", "num_classes", "info", "roles")}
    try:
        text = json.dumps(meta, sort_keys=True)
    except TypeError:
        return None
    plain = all(v.dtype.kind in "biuf" for s in SPLITS for v in data.split(s).fields.values())
    return text if plain and json.loads(text) == meta else None


def _write(path: pathlib.Path, data: Dataset, meta: str) -> None:
    arrays = {f"{s}/{k}": v for s in SPLITS for k, v in data.split(s).fields.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
        np.savez(f, **arrays, **{_META: np.array(meta)})
    os.replace(f.name, path)  # readers see the whole file or none


def _read(path: pathlib.Path) -> Dataset:
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz[_META]))
        fields = {s: {} for s in SPLITS}
        for entry in npz.files:
            if entry != _META:
                split, name = entry.split("/", 1)
                fields[split][name] = npz[entry]
    splits = {s: Split(**fields[s]) for s in SPLITS}
    return Dataset(
        meta["name"],
        **splits,
        num_classes=meta["num_classes"],
        info=meta["info"],
        roles=meta["roles"],
    )


def cached(section, build: Callable[[], Dataset]) -> Dataset:
    """``build()``, or the data set a previous process built for the same ``[data]``
    section (a pydantic section) when the cache is enabled and holds it."""
    if _directory is None or section.name not in CACHED:
        return build()
    path = _directory / f"{section.name}-{_key(section.model_dump_json())}.npz"
    try:
        return _read(path)
    except Exception:  # not there yet, or unreadable (a cut zip, bad JSON...): built again
        pass
    data = build()
    meta = _meta(data)
    if meta is not None:
        try:
            _write(path, data, meta)
        except OSError:
            pass  # a read-only or full disk only costs the next process the build
    return data
