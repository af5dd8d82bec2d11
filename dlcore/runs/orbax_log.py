"""Where orbax's and absl's log lines go: a run's ``checkpoints/orbax.log``, never the
terminal (orbax logs through absl and its own loggers, and runs its I/O in asyncio event
loops whose abandoned coroutines report when collected)."""

import contextlib
import gc
import logging
import pathlib
import sys
import warnings

LOGGERS = ("absl", "orbax", "jax.experimental.array_serialization", "asyncio")


class _QuietFileHandler(logging.FileHandler):
    """A log file that never writes to the terminal, even when it cannot be written
    (disk full): the record is dropped instead of printing a logging traceback."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


_log: _QuietFileHandler | None = None  # where LOGGERS write, once a store was opened
_previous_unraisablehook = sys.unraisablehook


def log_to(path: pathlib.Path) -> None:
    """Sends the orbax/absl/asyncio loggers' records to ``path``, not the terminal.

    The route outlives the store that set it: orbax's background threads and abandoned
    coroutines report after a failed read or write has returned; those lines belong to
    the run they came from. The store opened last decides the file.
    """
    global _log, _previous_unraisablehook
    if _log is not None and _log.baseFilename == str(path):
        return
    try:
        handler = _QuietFileHandler(path)  # the log exists from the first store on
    except OSError:
        handler = _QuietFileHandler(path, delay=True)  # read-only: records are dropped
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _log is not None:
            logger.removeHandler(_log)
        logger.addHandler(handler)
        logger.propagate = False  # root's stderr handler (orbax installs one) never sees them
    if _log is not None:
        _log.close()
    _log = handler
    if sys.unraisablehook is not _unraisable_to_log:
        _previous_unraisablehook, sys.unraisablehook = sys.unraisablehook, _unraisable_to_log


def _unraisable_to_log(unraisable) -> None:
    """``Exception ignored in <coroutine ...>`` from orbax's abandoned asyncio work goes to
    the log; any other unraisable exception to the hook that was there before."""
    code = getattr(unraisable.object, "cr_code", None)
    files = [code.co_filename] if code is not None else []
    tb = unraisable.exc_traceback
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    if any(part in f for f in files for part in ("orbax", "tensorstore", "asyncio")):
        logging.getLogger("orbax").warning(
            "%s %r: %r",
            unraisable.err_msg or "Exception ignored in",
            unraisable.object,
            unraisable.exc_value,
        )
    else:
        _previous_unraisablehook(unraisable)


@contextlib.contextmanager
def leftovers_collected():
    """A failed orbax read leaves asyncio coroutines behind, which warn 'coroutine ... was
    never awaited' or raise when collected; this block collects them at its end, while
    those warnings are off, so that they reach the log (see :func:`_unraisable_to_log`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        try:
            yield
        finally:
            gc.collect()
