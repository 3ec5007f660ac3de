"""Tests for zotpy.meta.db: connection settings, cooperative lock retries, models and migrations."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import peewee
import pytest

import zotpy
from zotpy.meta.db import (
    DEFAULT_DB_NAME,
    SchemaVersion,
    bound_model,
    close_if_open,
    connect_models,
    migrate,
    open_database,
    schema_version,
)

SRC = str(Path(zotpy.__file__).resolve().parent.parent)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / DEFAULT_DB_NAME)


@contextmanager
def write_lock_held(path: str, seconds: float) -> Iterator[None]:
    """Hold SQLite's write lock on ``path`` from another thread for ``seconds``, starting now."""
    locked, done = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        done.wait(seconds)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(5)
    try:
        yield
    finally:
        holder.join(seconds + 5)


def test_default_name_is_not_zots() -> None:
    assert DEFAULT_DB_NAME == "zotpy.db"


def test_connection_settings(tmp_path: Path) -> None:
    db = open_database(str(tmp_path / "sub" / "dir" / DEFAULT_DB_NAME))
    assert os.path.isdir(tmp_path / "sub" / "dir")
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 50


def test_close_if_open(db_path: str) -> None:
    db = open_database(db_path)
    close_if_open(db)
    db.execute_sql("SELECT 1")
    assert not db.is_closed()
    close_if_open(db)
    assert db.is_closed()


class Note(peewee.Model):
    text = peewee.TextField()


def test_connect_models_creates_tables_once(db_path: str) -> None:
    db = open_database(db_path)
    connect_models(db, [Note])
    Note.create(text="kept")
    connect_models(db, [Note])
    assert [n.text for n in Note.select()] == ["kept"]


def test_bound_model_keeps_databases_apart(tmp_path: Path) -> None:
    first, second = open_database(str(tmp_path / "1.db")), open_database(str(tmp_path / "2.db"))
    notes1, notes2 = bound_model(Note, first), bound_model(Note, second)
    first.create_tables([notes1])
    second.create_tables([notes2])
    notes1.create(text="one")
    assert notes2.select().count() == 0
    assert notes1._meta.table_name == notes2._meta.table_name == Note._meta.table_name
    assert issubclass(notes1, Note)


def test_statement_waits_for_a_lock_longer_than_busy_timeout(db_path: str) -> None:
    db = open_database(db_path)
    db.execute_sql("CREATE TABLE t (x INTEGER)")
    with write_lock_held(db_path, 0.3):
        start = time.monotonic()
        db.execute_sql("INSERT INTO t VALUES (1)")
        assert time.monotonic() - start > 0.2
    assert db.execute_sql("SELECT count(*) FROM t").fetchone()[0] == 1


def test_transaction_waits_for_a_lock(db_path: str) -> None:
    db = open_database(db_path)
    db.execute_sql("CREATE TABLE t (x INTEGER)")
    with write_lock_held(db_path, 0.3), db.atomic():
        db.execute_sql("INSERT INTO t VALUES (1)")
    assert db.execute_sql("SELECT count(*) FROM t").fetchone()[0] == 1


def test_lock_error_raised_after_retry_budget(db_path: str) -> None:
    db = open_database(db_path, lock_retry_seconds=0.2)
    db.execute_sql("CREATE TABLE t (x INTEGER)")
    with write_lock_held(db_path, 1.0):
        start = time.monotonic()
        with pytest.raises(peewee.OperationalError, match="database is locked"):
            db.execute_sql("INSERT INTO t VALUES (1)")
        assert 0.15 < time.monotonic() - start < 0.9


def test_other_errors_are_not_retried(db_path: str) -> None:
    db = open_database(db_path)
    start = time.monotonic()
    with pytest.raises(peewee.OperationalError, match="no such table"):
        db.execute_sql("SELECT * FROM missing")
    assert time.monotonic() - start < 0.5


GEVENT_SCRIPT = """
    from gevent import monkey

    monkey.patch_all()

    import json, sqlite3, sys
    import gevent
    from zotpy.meta.db import open_database

    path = sys.argv[1]
    db = open_database(path)
    db.execute_sql("CREATE TABLE t (x INTEGER)")
    ticks = [0]

    def tick():
        while True:
            gevent.sleep(0.001)
            ticks[0] += 1

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    ticker = gevent.spawn(tick)
    writer = gevent.spawn(db.execute_sql, "INSERT INTO t VALUES (1)")
    gevent.sleep(0.5)
    ticks_while_locked = ticks[0]
    holder.execute("COMMIT")
    writer.get(timeout=10)
    ticker.kill()
    rows = db.execute_sql("SELECT count(*) FROM t").fetchone()[0]
    print(json.dumps({"ticks_while_locked": ticks_while_locked, "rows": rows}))
"""


def test_lock_waits_let_other_greenlets_run(db_path: str) -> None:
    pytest.importorskip("gevent")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(GEVENT_SCRIPT), db_path],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["rows"] == 1
    assert result["ticks_while_locked"] > 20


def test_migrate_runs_each_step_once(db_path: str) -> None:
    db = open_database(db_path)
    calls: list[int] = []

    def step(number: int) -> None:
        calls.append(number)
        db.execute_sql(f"CREATE TABLE t{number} (x INTEGER)")

    steps = {1: lambda d: step(1), 2: lambda d: step(2)}
    assert schema_version(db, "index") == 0
    migrate(db, "index", 2, steps)
    migrate(db, "index", 2, steps)
    assert calls == [1, 2]
    assert schema_version(db, "index") == 2
    migrate(db, "index", 3, {**steps, 3: lambda d: step(3)})
    assert calls == [1, 2, 3]
    assert schema_version(db, "index") == 3
    assert schema_version(db, "other") == 0


def test_migrate_passes_the_database_and_records_versions_without_steps(db_path: str) -> None:
    db = open_database(db_path)
    seen: list[peewee.Database] = []
    migrate(db, "meta", 1, {1: seen.append})
    assert seen == [db]
    migrate(db, "meta", 4, {})
    assert schema_version(db, "meta") == 4


def test_failed_step_is_rolled_back(db_path: str) -> None:
    db = open_database(db_path)

    def broken(d: peewee.Database) -> None:
        d.execute_sql("CREATE TABLE half (x INTEGER)")
        raise RuntimeError("step failed")

    migrate(db, "meta", 1, {1: lambda d: None})
    with pytest.raises(RuntimeError, match="step failed"):
        migrate(db, "meta", 2, {2: broken})
    assert schema_version(db, "meta") == 1
    assert "half" not in db.get_tables()


def test_migrate_refuses_newer_schema_and_bad_steps(db_path: str) -> None:
    db = open_database(db_path)
    migrate(db, "meta", 3, {})
    with pytest.raises(RuntimeError, match="newer"):
        migrate(db, "meta", 2, {})
    with pytest.raises(ValueError):
        migrate(db, "meta", 3, {4: lambda d: None})
    with pytest.raises(ValueError):
        migrate(db, "meta", 3, {0: lambda d: None})


def test_schema_version_model_stays_unbound(db_path: str) -> None:
    migrate(open_database(db_path), "meta", 1, {})
    assert SchemaVersion._meta.database is None
