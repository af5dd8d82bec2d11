"""The ``dlcore`` command line (``dlcore.cli.main``) and what it prints."""

from dlcore.cli.main import main

__all__ = ["main"]
