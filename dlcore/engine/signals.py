"""Graceful stop: SIGINT/SIGTERM finish the current step, then the loop checkpoints."""

import signal
import types


class GracefulStop:
    """Context manager that turns SIGINT/SIGTERM into a flag the loop polls.

    A second signal while stopping restores the default handler, so an impatient
    Ctrl-C twice still kills the process.

    Attributes:
      signum: the signal received, or None.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """The conventional shell status for death by this signal: 128 + signum."""
        return 128 + (self.signum or 0)

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.signum is not None:
            signal.signal(signum, signal.SIG_DFL)
        self.signum = signum

    def __enter__(self) -> "GracefulStop":
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class NeverStop:
    """Stand-in for library use where no signal handling is wanted."""

    requested = False
    signum = None
    exit_code = 0


NEVER_STOP = NeverStop()
