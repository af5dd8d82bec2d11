"""``python -m scripts.torch_refs [AREA ...]``: regenerate ``tests/references/torch_<area>.npz``.

Needs PyTorch (the ``bench`` extra). With no area named, every area is made.
"""

import importlib
import pathlib
import sys

import numpy as np

AREAS = ("losses", "optim", "layers", "gru", "attention")
OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "references"


def main(areas: list[str]) -> None:
    for area in areas or AREAS:
        if area not in AREAS:
            sys.exit(f"unknown area {area!r}; choose from {', '.join(AREAS)}")
        arrays = importlib.import_module(f"scripts.torch_refs.{area}").make()
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"torch_{area}.npz"
        np.savez_compressed(path, **arrays)
        print(f"{path}: {len(arrays)} arrays, {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
