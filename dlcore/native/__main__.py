"""``python -m dlcore.native build|status``: build the native kernels now, or say where they are.

``make`` runs ``build`` at install time so that no run or test pays for the compile. A
failed build prints its one-line reason and exits 0: dlcore then runs on XLA, as it would
on a machine without a compiler.
"""

import argparse
import json
import sys

from dlcore.native import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcore.native")
    parser.add_argument("command", choices=("build", "status"))
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    if args.command == "build":
        try:
            path = build.build(force=args.force)
        except build.BuildError as err:
            print(f"dlcore: native CPU kernels not built ({err}); dlcore will use XLA")
            return 0
        print(f"dlcore: native CPU kernels ready: {path}")
        return 0
    from dlcore.native import loader

    print(json.dumps(loader.status(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
