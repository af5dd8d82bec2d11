"""The layout rules the README's Architecture section states, checked on the source."""

import ast
import pathlib

from tests.helpers import REPO

PACKAGE = REPO / "dlcore"
REGISTRIES = ("dlcore.data.registry", "dlcore.models.registry", "dlcore.tasks.registry")


def _module_file(name: str) -> pathlib.Path | None:
    path = REPO / name.replace(".", "/")
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return path / "__init__.py" if (path / "__init__.py").is_file() else None


def _dlcore_imports(name: str) -> set[str]:
    """The dlcore modules ``name`` imports, and the packages whose __init__ that runs (the
    top-level ``dlcore`` package's flat API aside: it sits above everything)."""
    tree = ast.parse(_module_file(name).read_text())
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlcore"):
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("dlcore")]
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # every package on the way runs its __init__
                if _module_file(".".join(parts[:i])) is not None:
                    found.add(".".join(parts[:i]))
    return found


def test_the_engine_imports_no_registry():
    seen, todo = set(), [f"dlcore.engine.{p.stem}" for p in (PACKAGE / "engine").glob("*.py")]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_dlcore_imports(name) - seen)
    reached = sorted(m for m in seen if m in REGISTRIES or m in ("dlcore.models", "dlcore.tasks"))
    assert not reached, f"the engine's imports reach {reached}"
    assert "dlcore.runs.run_dir" in seen  # the walk does follow the engine's imports


def _files():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_over_400_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in _files()
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long


def test_init_files_only_re_export():
    for path in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            exports = isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in ("__all__", "__version__") for t in node.targets
            )
            assert docstring or exports or isinstance(node, (ast.Import, ast.ImportFrom)), (
                f"{path.relative_to(REPO)}:{node.lineno} defines something; move it to a module"
            )


def test_no_loose_grab_bag_modules():
    assert not list(PACKAGE.rglob("utils.py"))
    top = {p.stem for p in PACKAGE.glob("*.py")}
    # configuration, run files and the command line live in their packages now
    assert not top & {"config", "config_base", "config_loading", "run_dir", "checkpoint", "cli"}
    assert pathlib.Path(PACKAGE / "config" / "experiment.py").is_file()


def test_each_package_imports_first_without_a_cycle():
    # `import dlcore` loads nothing (its flat API is lazy), so a package imported first
    # must not depend on another package's import order: each runs in a fresh process.
    import os
    import subprocess
    import sys

    # The packages that import across the zoo (the others import only downwards).
    packages = [
        "dlcore.experiment",
        "dlcore.models",
        "dlcore.seq2seq",
        "dlcore.tasks",
        "dlcore.viz",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", f"import {name}"], env=env, stderr=subprocess.PIPE, text=True
        )
        for name in packages
    }
    failed = {}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        if proc.returncode:
            failed[name] = err.strip().splitlines()[-1]
    assert "dlcore.seq2seq" in procs
    assert failed == {}
