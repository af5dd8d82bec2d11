"""A stopwatch that adds up the seconds spent inside ``with`` blocks (the loop's clocks)."""

import time


class Stopwatch:
    """Adds up the seconds spent inside ``with`` blocks.

    Example:
      >>> clock = Stopwatch()
      >>> with clock:
      ...     pass
      >>> clock.total >= 0.0
      True
    """

    def __init__(self):
        self.total = 0.0

    def __enter__(self):
        self._t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.total += time.perf_counter() - self._t0
