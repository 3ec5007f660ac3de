"""Named exclusive locks shared by the threads, greenlets and processes of one storage root.

A lock is an in-process lock (greenlet-aware once gevent has patched ``threading``) followed by a
non-blocking ``flock`` that is polled with ``time.sleep``.  A blocking ``flock`` is never used: a
greenlet waiting in it would stop the whole gevent worker, and if the holder were a sibling greenlet
of the same worker it would never be released.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator

__all__ = ["LockSet", "LockTimeout"]

MAX_POLL_INTERVAL = 0.004
"""Longest pause, in seconds, between two attempts to take a file lock held elsewhere."""


class LockTimeout(TimeoutError):
    """A lock could not be taken within the time the caller allowed."""

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f"lock {name!r} not acquired within {timeout:g}s")
        self.name = name
        self.timeout = timeout


class LockSet:
    """Exclusive locks identified by arbitrary strings, backed by lock files in one directory.

    Locks are not reentrant: taking a lock already held by the caller waits forever (or times out).
    """

    def __init__(self, directory: str, poll_interval: float = 0.001) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.directory = directory
        self.poll_interval = poll_interval
        # Resolved at call time, so locks made after gevent's monkey patching are greenlet-aware.
        self._guard = threading.Lock()
        self._local: dict[str, threading.Lock] = {}

    def path(self, name: str) -> str:
        """Return the lock file for ``name``; a digest of the name, so no name can escape the directory."""
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return os.path.join(self.directory, f"{digest}.lock")

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None = None) -> Iterator[None]:
        """Hold the exclusive lock on ``name`` for the duration of the ``with`` block.

        Raises ``LockTimeout`` when ``timeout`` seconds pass before the lock is taken.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        local = self._local_lock(name)
        if not local.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
            raise LockTimeout(name, timeout or 0.0)
        try:
            fd = os.open(self.path(name), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                self._flock(fd, name, timeout, deadline)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        finally:
            local.release()

    def _local_lock(self, name: str) -> threading.Lock:
        """Return the in-process lock for ``name``, creating it on first use."""
        with self._guard:
            local = self._local.get(name)
            if local is None:
                local = self._local[name] = threading.Lock()
            return local

    def _flock(self, fd: int, name: str, timeout: float | None, deadline: float | None) -> None:
        """Take the file lock on ``fd``, sleeping between attempts so other greenlets keep running."""
        delay = self.poll_interval
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
            pause = delay
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LockTimeout(name, timeout or 0.0)
                pause = min(pause, remaining)
            time.sleep(pause)
            delay = min(delay * 2, max(MAX_POLL_INTERVAL, self.poll_interval))
