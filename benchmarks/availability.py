"""Detects which dlcore parts exist, so unfinished ones are reported as "not available"."""

import importlib.util


def dlcore_has(module: str) -> bool:
    """True if ``module`` (e.g. ``"dlcore.recurrent"``) is a real module or package here.

    A bare directory can surface as a namespace package (no ``__init__.py``, origin None),
    e.g. through an editable install of another checkout; that does not count.

    Example:
      >>> dlcore_has("dlcore.losses"), dlcore_has("dlcore.no_such_module")
      (True, False)
    """
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return False
    return spec is not None and spec.origin is not None
