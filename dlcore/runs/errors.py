"""The errors a run can end with, each mapped to one documented exit status by the CLI.

0    done (also: resuming a run that had already finished)
1    internal error: a bug in dlcore (the only case that prints a traceback)
2    bad input: config, usage, run directory, data that differ, a lock held by another
     writer, no intact checkpoint to continue from
3    training halted: non-finite loss, gradients or parameters (nothing non-finite is
     ever committed; the last good checkpoint is named)
4    I/O error writing the run directory (disk full, permissions)
5    ``dlcore check --overfit N``: the model did not drive the loss to ~0 on N examples
     (:mod:`dlcore.experiment.overfit`)
130  stopped by SIGINT, 143 stopped by SIGTERM (a checkpoint was committed first)

and the one way a run reports something odd it goes on despite: :func:`warn`.
"""

import sys


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (a damaged checkpoint skipped, a stale lock taken
    over, an edited config applied, unreadable metrics lines dropped)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (exists, missing, incomplete, locked)."""


class DivergedError(RuntimeError):
    """Training produced non-finite values and halted (exit status 3)."""


class RunIOError(OSError):
    """Writing the run directory failed (exit status 4); the message names the path."""


EXIT_OK, EXIT_BUG, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_IO = 0, 1, 2, 3, 4
EXIT_NOT_FITTED = 5
