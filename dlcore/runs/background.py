"""One save at a time, off the training thread: the store's background writer.

A checkpoint save costs tens of milliseconds of Python in orbax (its event loops, commit
threads and directory renames) whatever the state's size, which on a small model is as
long as an epoch of training. :class:`InFlight` runs each save in a thread of its own
while training goes on, and keeps at most one in flight: starting the next save, or
waiting, first joins the previous one and raises its error, so a failed write is noticed
at the next save exactly as with orbax's own asynchronous commit.

An interpreter that is exiting (after an error, or after a signal stopped the loop)
first waits for every job in flight, so a save that was started is committed (or has
failed cleanly) before the process ends.
"""

import threading
from collections.abc import Callable

_RUNNING: dict[str, threading.Thread] = {}  # by name: the job each InFlight runs now


def _join_all() -> None:
    for thread in list(_RUNNING.values()):
        thread.join()


def _at_exit_join_all() -> None:
    """Makes the exiting interpreter wait for the jobs in flight while they can still run.

    ``atexit`` and the join of non-daemon threads both come too late: by then
    ``concurrent.futures`` (which orbax's commit uses) refuses new work. The threading
    module's own exit hooks run first, newest first; registered after orbax has loaded
    (at the first job), this one runs before the executors shut down.
    """
    global _REGISTERED
    if not _REGISTERED:
        threading._register_atexit(_join_all)
        _REGISTERED = True


_REGISTERED = False


def join_running(name: str) -> None:
    """Waits for the job an earlier :class:`InFlight` of this name may still run (a store
    abandoned by an error, in this process): its errors stay with it."""
    thread = _RUNNING.get(name)
    if thread is not None:
        thread.join()


class InFlight:
    """At most one background job; its exception is raised at the next :meth:`start` or
    :meth:`wait`.

    Example:
      >>> saves = InFlight("checkpoint latest")
      >>> saves.start(lambda: None)
      >>> saves.wait()
    """

    def __init__(self, name: str):
        self.name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, job: Callable[[], None]) -> None:
        """Runs ``job()`` in a new thread once the previous job has finished.

        Raises:
          BaseException: whatever the previous job raised.
        """
        self.wait()

        def run() -> None:
            try:
                job()
            except BaseException as err:  # handed to the thread that waits
                self._error = err

        _at_exit_join_all()
        self._thread = _RUNNING[self.name] = threading.Thread(target=run, name=self.name)
        self._thread.start()

    def wait(self) -> None:
        """Blocks until the job in flight (if any) has finished.

        Raises:
          BaseException: whatever that job raised (once: a second wait returns).
        """
        if self._thread is not None:
            self._thread.join()
            if _RUNNING.get(self.name) is self._thread:
                del _RUNNING[self.name]
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error
