"""One writer per run directory: ``<run>/.lock``, held with ``flock`` while a run trains.

``dlcore run``, ``dlcore resume`` and every sweep trial hold the lock for as long as they
write the run directory; ``eval``, ``sample`` and ``runs`` only read and take none. The
file holds the holder's pid and host as JSON, so a refused writer can say who holds it.

The kernel, not the file, decides who holds the lock: ``flock`` belongs to the open file,
so a holder that is SIGKILLed or crashes releases it when the kernel closes its files. A
lock file found unlocked but still naming a pid was left by such a process; the next
writer takes it over with one warning line. A holder that finishes removes the file.

Example:
  >>> with RunLock(run.path):
  ...     train_into(run)
"""

import fcntl
import json
import os
import pathlib
import socket

from dlcore.runs.errors import RunDirError, warn

__all__ = ["LOCK_NAME", "RunLock", "lock_holder"]

LOCK_NAME = ".lock"


def _describe(text: str) -> str:
    """``pid 1234 on host h`` from a lock file's contents (which may be empty or torn)."""
    try:
        holder = json.loads(text)
        return f"pid {int(holder['pid'])} on host {holder['host']}"
    except (ValueError, TypeError, KeyError):
        # The holder takes the lock before it writes its pid: a reader can see it empty.
        return "pid not yet recorded"


def _gone(text: str) -> bool:
    """True when the lock file names a process of this host that no longer exists."""
    try:
        holder = json.loads(text)
        if holder["host"] != socket.gethostname():
            return False
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, TypeError, KeyError, OSError):
        return False
    return False


def lock_holder(directory: str | pathlib.Path) -> str | None:
    """Who holds ``directory``'s lock (``pid 1234 on host h``), or None; changes nothing.

    A shared lock is tried and dropped at once, so a writer that calls ``flock`` in that
    same instant is refused as if the directory were busy; only a command that is about
    to refuse anyway (``dlcore run`` into a non-empty directory) asks.
    """
    try:
        fd = os.open(pathlib.Path(directory) / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(f.read())
        return None  # closing the file drops the shared lock


class RunLock:
    """The writer lock of one run directory (a context manager).

    Args:
      directory: the run directory; it must exist.
    """

    def __init__(self, directory: str | pathlib.Path):
        self.directory = pathlib.Path(directory)
        self.path = self.directory / LOCK_NAME
        self._file = None

    def acquire(self) -> "RunLock":
        """Takes the lock without waiting (entering the context manager calls this).

        Raises:
          RunDirError: another process holds the lock (the message names its pid and
            host), or the lock file cannot be made (the message gives the OS reason).
        """
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as err:
                raise RunDirError(
                    f"{self.directory}: cannot make the lock file {LOCK_NAME}: {err.strerror}"
                ) from None
            f = os.fdopen(fd, "r+")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe(f.read())
                f.close()
                raise RunDirError(
                    f"{self.directory}: another dlcore process ({holder}) is writing this "
                    "run directory"
                ) from None
            # A holder that just finished unlinks the file it locked; locking that orphan
            # would not exclude a writer that opens the new file, so open it again.
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(os.fstat(fd), current):
                break
            f.close()
        previous = f.read()
        if previous.strip():
            why = "that process is gone" if _gone(previous) else "it no longer holds it"
            warn(
                f"{self.directory}: taking over a stale lock left by {_describe(previous)} ({why})"
            )
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        """Removes the lock file, then drops the lock (in that order: see ``acquire``)."""
        if self._file is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # a file left behind is only a stale lock: the next writer takes it over
        self._file.close()
        self._file = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
