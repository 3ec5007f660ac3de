"""Named exclusive locks shared by the threads, greenlets and processes of one storage root.

A lock is an in-process lock (greenlet-aware once gevent has patched ``threading``) followed by an
``flock`` on a lock file, first tried without blocking.  A blocking ``flock`` is never called on the
gevent loop (a greenlet waiting in it would stop the whole worker, and a holder that is a sibling
greenlet would never run to release it): under gevent the wait happens in a native thread, elsewhere
the lock is polled with ``time.sleep``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["LocalLocks", "LockSet", "LockTimeout", "poll_until"]

MAX_POLL_INTERVAL = 0.004
"""Longest pause, in seconds, between two attempts to take a file lock held elsewhere."""

WAITER_THREADS = 32
"""Native threads per process that may sit in a blocking ``flock`` (one per contended lock name)."""

_BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)


class LockTimeout(TimeoutError):
    """A lock could not be taken within the time the caller allowed."""

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f"lock {name!r} not acquired within {timeout:g}s")
        self.name = name
        self.timeout = timeout


class LocalLocks:
    """The in-process half of a named lock: one lock per name, made on first use.

    Made at call time, so locks created after gevent's monkey patching are greenlet-aware.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @contextlib.contextmanager
    def hold(self, name: str, timeout: float | None, deadline: float | None) -> Iterator[None]:
        """Hold ``name``'s lock for the ``with`` block; ``LockTimeout`` once ``deadline`` passes."""
        with self._guard:
            local = self._locks.get(name)
            if local is None:
                local = self._locks[name] = threading.Lock()
        if not local.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
            raise LockTimeout(name, timeout or 0.0)
        try:
            yield
        finally:
            local.release()


def poll_until(attempt: Callable[[], bool], name: str, timeout: float | None, deadline: float | None,
               interval: float, max_interval: float) -> None:
    """Call ``attempt`` until it returns True, sleeping (cooperatively under gevent) with a pause that
    doubles from ``interval`` up to ``max_interval``; ``LockTimeout`` once ``deadline`` passes."""
    pause = interval
    while not attempt():
        wait = pause
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(name, timeout or 0.0)
            wait = min(wait, remaining)
        time.sleep(wait)
        pause = min(pause * 2, max_interval)


class LockSet:
    """Exclusive locks identified by arbitrary strings, backed by lock files in one directory.

    Locks are not reentrant: taking a lock already held by the caller waits forever (or times out).
    """

    def __init__(self, directory: str, poll_interval: float = 0.001) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.directory = directory
        self.poll_interval = poll_interval
        self._local = LocalLocks()

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
        with self._local.hold(name, timeout, deadline):
            fd = os.open(self.path(name), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                self._flock(fd, name, timeout, deadline)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _flock(self, fd: int, name: str, timeout: float | None, deadline: float | None) -> None:
        """Take the file lock on ``fd`` without stopping other greenlets.

        Under gevent the wait happens in a native thread blocked in ``flock``: the kernel wakes it as
        soon as the holder lets go, before the holder's process can take the lock again, so two busy
        workers take turns instead of one starving the other between polls. Elsewhere it polls.
        """

        def attempt() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in _BUSY:
                    raise
                return False
            return True

        if attempt():
            return
        if _gevent_patched():
            _wait_in_thread(fd, name, timeout, deadline)
            return
        poll_until(attempt, name, timeout, deadline, self.poll_interval,
                   max(MAX_POLL_INTERVAL, self.poll_interval))


def _gevent_patched() -> bool:
    """True in a process whose ``threading`` gevent has patched (a gunicorn gevent worker)."""
    if "gevent.monkey" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("threading"))


_pool_owner: tuple[int, Any] | None = None


def _waiter_pool() -> Any:
    """This process's pool of native threads for blocking ``flock`` calls (made again after a fork)."""
    global _pool_owner
    if _pool_owner is None or _pool_owner[0] != os.getpid():
        from gevent.threadpool import ThreadPool

        _pool_owner = (os.getpid(), ThreadPool(WAITER_THREADS))
    return _pool_owner[1]


class _Handoff:
    """A blocking ``flock`` in a native thread that a greenlet waits for, and may give up on."""

    def __init__(self, fd: int) -> None:
        from gevent import monkey

        # The thread blocks on its own descriptor of the same open file, so the caller may close
        # ``fd`` after giving up without the thread touching a descriptor number reused meanwhile.
        self.fd = os.dup(fd)
        self.guard = monkey.get_original("threading", "Lock")()
        self.acquired = False
        self.abandoned = False

    def take(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            with self.guard:
                if self.abandoned:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
                else:
                    self.acquired = True
        finally:
            os.close(self.fd)

    def give_up(self) -> bool:
        """Stop waiting; True if the lock was taken just before (the caller holds it after all)."""
        with self.guard:
            self.abandoned = not self.acquired
            return self.acquired


def _wait_in_thread(fd: int, name: str, timeout: float | None, deadline: float | None) -> None:
    import gevent

    handoff = _Handoff(fd)
    result = _waiter_pool().spawn(handoff.take)
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        result.get(timeout=remaining)
    except gevent.Timeout:
        if not handoff.give_up():
            raise LockTimeout(name, timeout or 0.0) from None
    except BaseException:
        if not handoff.give_up():
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        raise
