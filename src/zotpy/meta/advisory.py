"""Locks that every node sharing one PostgreSQL database honours: session-level advisory locks.

With several nodes on one bucket, lock files on each node's disk no longer exclude anything, so the
store's locks (a repository's index.json, an upload session, a blob's placement) become PostgreSQL
advisory locks.  As with ``zotpy.locks``, an in-process lock comes first, then the shared lock is
*tried* and the wait is a cooperative ``time.sleep`` (a blocking ``pg_advisory_lock`` would hold a
connection and, without gevent's wait callback, the whole worker).  Each held lock owns one
connection of its own, outside the request pool, which goes back to a small idle list afterwards.
If that connection breaks, PostgreSQL drops the lock with it; the holder is not told.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from zotpy.locks import LocalLocks, poll_until

__all__ = ["AdvisoryLockSet", "HeldAdvisoryLock", "advisory_key"]

MAX_POLL_INTERVAL = 0.05
IDLE_CONNECTIONS = 8


def advisory_key(namespace: str, name: str) -> int:
    """The signed 64-bit advisory lock key of ``name`` within ``namespace``."""
    digest = hashlib.sha256(f"{namespace}\0{name}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLockSet:
    """Exclusive named locks across processes and nodes (``zotpy.storage.interfaces.Locks``).

    Not reentrant, like ``zotpy.locks.LockSet``.
    """

    def __init__(self, connect: Callable[[], Any], namespace: str, *, poll_interval: float = 0.002) -> None:
        self._connect = connect
        self.namespace = namespace
        self.poll_interval = poll_interval
        self._local = LocalLocks()
        self._guard = threading.Lock()  # guards the idle connections
        self._idle: list[Any] = []

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None = None) -> Iterator[None]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._local.hold(name, timeout, deadline):
            key = advisory_key(self.namespace, name)
            conn = self._take()
            healthy = False
            try:
                # A cooperative sleep between tries, never a blocking pg_advisory_lock (see above).
                poll_until(lambda: bool(_execute(conn, "SELECT pg_try_advisory_lock(%s)", key)),
                           name, timeout, deadline, self.poll_interval, MAX_POLL_INTERVAL)
                try:
                    yield
                finally:
                    _execute(conn, "SELECT pg_advisory_unlock(%s)", key)
                healthy = True
            finally:
                self._give(conn, healthy)

    def _take(self) -> Any:
        with self._guard:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
        return self._connect()

    def _give(self, conn: Any, healthy: bool) -> None:
        with self._guard:
            if healthy and not conn.closed and len(self._idle) < IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        """Close the idle connections (held locks keep theirs until released)."""
        with self._guard:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()


def _execute(conn: Any, sql: str, key: int) -> bool:
    with conn.cursor() as cursor:
        cursor.execute(sql, (key,))
        return bool(cursor.fetchone()[0])


class HeldAdvisoryLock:
    """One advisory lock held for long (a scheduler's, the startup work's) on a connection of its own.

    ``try_acquire`` never waits; the lock lasts until ``release`` or until the connection ends
    (a node that dies lets another take over).
    """

    def __init__(self, connect: Callable[[], Any], namespace: str, name: str) -> None:
        self._connect = connect
        self.key = advisory_key(namespace, name)
        self._conn: Any = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = self._connect()
        if _execute(conn, "SELECT pg_try_advisory_lock(%s)", self.key):
            self._conn = conn
            return True
        conn.close()
        return False

    def acquire(self, poll_interval: float = 0.1) -> None:
        """Wait (cooperatively) until the lock is held."""
        while not self.try_acquire():
            time.sleep(poll_interval)

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()  # ending the session releases its advisory locks
