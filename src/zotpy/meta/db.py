"""The embedded SQLite database shared by every worker process of one storage root.

SQLite's own busy handler sleeps inside C, which would stall a whole gevent worker, so it is kept
short and a ``database is locked`` error is retried here with ``time.sleep`` (cooperative under
gevent).  Transactions begin ``IMMEDIATE``: the write lock is taken (and waited for) at ``BEGIN``,
so statements inside a transaction never meet a lock that only restarting the transaction could
clear.  peewee keeps one connection per thread, which is one per greenlet once gevent has patched
``threading.local``; call ``close_if_open`` when a request ends.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import peewee

__all__ = [
    "DEFAULT_DB_NAME",
    "CooperativeSqliteDatabase",
    "SchemaVersion",
    "bound_model",
    "close_if_open",
    "connect_models",
    "migrate",
    "open_database",
    "release_all",
    "schema_version",
]

DEFAULT_DB_NAME = "zotpy.db"
"""File name of the database inside a storage root (zot's are ``cache.db`` and ``meta.db``)."""

BUSY_TIMEOUT = 0.05
"""Seconds SQLite itself may wait for a lock before reporting ``database is locked``."""

LOCK_RETRY_SECONDS = 10.0
"""Default total time spent retrying a locked database before the error is raised."""

MAX_RETRY_PAUSE = 0.1

T = TypeVar("T")
M = TypeVar("M", bound=type[peewee.Model])
MigrationStep = Callable[[peewee.Database], None]


def _is_locked(error: Exception) -> bool:
    return "database is locked" in str(error)


class CooperativeSqliteDatabase(peewee.SqliteDatabase):
    """A peewee SQLite database whose lock waits yield to other greenlets instead of blocking."""

    def __init__(self, path: str, *, lock_retry_seconds: float = LOCK_RETRY_SECONDS, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.lock_retry_seconds = lock_retry_seconds

    def retrying(self, call: Callable[[], T]) -> T:
        """Run ``call``, retrying with growing cooperative sleeps while the database is locked."""
        deadline = time.monotonic() + self.lock_retry_seconds
        pause = 0.001
        while True:
            try:
                return call()
            except (sqlite3.OperationalError, peewee.OperationalError) as error:
                remaining = deadline - time.monotonic()
                if not _is_locked(error) or remaining <= 0:
                    raise
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, MAX_RETRY_PAUSE)

    def connect(self, reuse_if_open: bool = False) -> bool:
        # Setting the journal mode on a fresh connection can meet a lock too.
        return self.retrying(lambda: super(CooperativeSqliteDatabase, self).connect(reuse_if_open))

    def begin(self, lock_type: str | None = None) -> None:
        self.retrying(lambda: super(CooperativeSqliteDatabase, self).begin(lock_type))

    def commit(self) -> None:
        # A failed COMMIT leaves the transaction open, so trying again is safe.
        self.retrying(super().commit)

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        # Inside a transaction the write lock is already held (BEGIN IMMEDIATE); outside one,
        # each statement is its own transaction and can simply be run again.
        if self.in_transaction():
            return super().execute_sql(sql, params)
        return self.retrying(lambda: super(CooperativeSqliteDatabase, self).execute_sql(sql, params))


def open_database(path: str, *, lock_retry_seconds: float = LOCK_RETRY_SECONDS) -> CooperativeSqliteDatabase:
    """Open (lazily, on first use) the SQLite database at ``path`` for many processes and greenlets.

    Connect only after forking: a connection must never be shared between processes.
    """
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    return CooperativeSqliteDatabase(
        path,
        lock_retry_seconds=lock_retry_seconds,
        timeout=BUSY_TIMEOUT,
        lock_type="IMMEDIATE",
        pragmas={"journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1},
    )


def close_if_open(db: peewee.Database) -> None:
    """Close the calling greenlet's connection, if it has one (request teardown)."""
    if not db.is_closed():
        db.close()


def release_all(db: peewee.Database) -> None:
    """Close every connection ``db`` holds, pooled ones included (before the process forks)."""
    close_all = getattr(db, "close_all", None)
    if close_all is not None:
        close_all()
    else:
        close_if_open(db)


def connect_models(db: peewee.Database, models: Iterable[type[peewee.Model]]) -> None:
    """Bind ``models`` to ``db`` and create their missing tables and indexes in one transaction."""
    models = list(models)
    db.bind(models)
    with db.atomic():
        db.create_tables(models, safe=True)


def bound_model(model: M, db: peewee.Database) -> M:
    """Return a subclass of ``model`` using ``db``, leaving ``model`` itself unbound.

    Lets several databases (one per store) use the same table definitions in one process.
    """
    meta = type("Meta", (), {"database": db, "table_name": model._meta.table_name})
    return type(model.__name__, (model,), {"Meta": meta, "__module__": model.__module__})  # type: ignore[return-value]


class SchemaVersion(peewee.Model):
    """The schema version each component (store index, metadata...) has reached in this database."""

    component = peewee.TextField(primary_key=True)
    version = peewee.IntegerField()

    class Meta:
        table_name = "schema_version"


def _recorded_version(table: type[SchemaVersion], component: str) -> int:
    row = table.get_or_none(table.component == component)
    return 0 if row is None else row.version


def schema_version(db: peewee.Database, component: str) -> int:
    """Return the schema version recorded for ``component`` (0 when it has none yet)."""
    table = bound_model(SchemaVersion, db)
    table.create_table(safe=True)
    return _recorded_version(table, component)


def migrate(db: peewee.Database, component: str, version: int, steps: Mapping[int, MigrationStep]) -> None:
    """Bring ``component`` to schema ``version`` by running, in order, each step it has not run yet.

    ``steps`` maps a version to the function (called with ``db``) that moves the schema from the
    previous version to it.  Each step runs in its own transaction together with recording its
    version, and the recorded version is re-read inside it, so concurrent callers run a step once.
    """
    if any(step < 1 or step > version for step in steps):
        raise ValueError(f"{component}: migration steps must be numbered 1..{version}")
    table = bound_model(SchemaVersion, db)
    with db.atomic():
        table.create_table(safe=True)
        current = _recorded_version(table, component)
    if current > version:
        raise RuntimeError(f"{component}: database schema {current} is newer than this code ({version})")
    for step in sorted(step for step in steps if step > current):
        with db.atomic():
            if _recorded_version(table, component) < step:
                steps[step](db)
                _record(table, component, step)
    if current < version:
        with db.atomic():
            if _recorded_version(table, component) < version:
                _record(table, component, version)


def _record(table: type[SchemaVersion], component: str, version: int) -> None:
    # An upsert both SQLite and PostgreSQL understand (REPLACE is SQLite's alone).
    table.insert(component=component, version=version).on_conflict(
        conflict_target=[table.component], update={table.version: version}).execute()
