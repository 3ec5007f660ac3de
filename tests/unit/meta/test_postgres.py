"""PostgreSQL as the index and metadata database: its config keys, the gevent-cooperative pool and the
advisory locks that several nodes share (against a real cluster started by the ``postgres`` fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import zotpy
from helpers.postgres import Postgres
from zotpy.errors import ConfigError
from zotpy.locks import LockTimeout
from zotpy.meta.advisory import AdvisoryLockSet, advisory_key
from zotpy.meta.postgres import connector, open_postgres
from zotpy.meta.storeindex import StoreIndex

SRC = str(Path(zotpy.__file__).resolve().parent.parent)


@pytest.mark.parametrize(("settings", "key"), [
    ({"name": "postgresql"}, "url"),
    ({"name": "postgresql", "url": "mysql://x/y"}, "url"),
    ({"name": "postgresql", "url": "postgresql://host:5432"}, "url"),
    ({"name": "postgresql", "url": "postgresql://h/db", "passwordFile": "/nonexistent/pw"}, "passwordFile"),
    ({"name": "postgresql", "url": "postgresql://h/db", "maxConnections": 0}, "maxConnections"),
    ({"name": "postgresql", "url": "postgresql://h/db", "tablename": "x"}, "tablename"),
])
def test_bad_settings_name_the_key(settings: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"storage\.cacheDriver\.{key}:"):
        open_postgres(settings)


def test_password_comes_from_the_file(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.fresh_url()
    index = StoreIndex(open_postgres(postgres.cache_driver(url)))
    index.add_repository("a")
    assert index.list_repositories() == ["a"]
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    db = open_postgres({"name": "postgresql", "url": url, "passwordFile": str(wrong)})
    with pytest.raises(Exception, match="password authentication failed"):
        db.connect()


def test_advisory_lock_excludes_another_node(postgres: Postgres) -> None:
    connect = connector(postgres.cache_driver(postgres.url()))
    node_a, node_b = AdvisoryLockSet(connect, "bucket/zot"), AdvisoryLockSet(connect, "bucket/zot")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with node_a.lock("repo-1"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        start = time.monotonic()
        with pytest.raises(LockTimeout), node_b.lock("repo-1", timeout=0.3):
            pass
        assert time.monotonic() - start >= 0.29
        with node_b.lock("repo-2", timeout=1):  # other names are free
            pass
        with AdvisoryLockSet(connect, "other-bucket/zot").lock("repo-1", timeout=1):  # other stores too
            pass
    finally:
        release.set()
        holder.join()
    with node_b.lock("repo-1", timeout=5):  # released with the holder's block
        pass
    node_a.close()
    node_b.close()


def test_advisory_lock_serialises_increments(postgres: Postgres) -> None:
    connect = connector(postgres.cache_driver(postgres.url()))
    nodes = [AdvisoryLockSet(connect, "ns") for _ in range(3)]
    counter = {"value": 0}

    def work(node: AdvisoryLockSet) -> None:
        for _ in range(20):
            with node.lock("counter"):
                seen = counter["value"]
                time.sleep(0.0005)
                counter["value"] = seen + 1

    threads = [threading.Thread(target=work, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter["value"] == 60


def test_advisory_keys_are_signed_64_bit_and_distinct() -> None:
    keys = {advisory_key("ns", f"repo-{i}") for i in range(1000)}
    assert len(keys) == 1000
    assert all(-(2**63) <= key < 2**63 for key in keys)
    assert advisory_key("a", "x") != advisory_key("b", "x")


def test_queries_yield_to_other_greenlets_under_gevent(postgres: Postgres) -> None:
    """A slow query in one greenlet leaves the others running (psycopg2 waits through gevent)."""
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import gevent, time, sys
        sys.path.insert(0, {SRC!r})
        from zotpy.meta.postgres import open_postgres
        db = open_postgres({postgres.cache_driver(postgres.url())!r})
        ticks = []
        def ticker():
            end = time.monotonic() + 0.6
            while time.monotonic() < end:
                ticks.append(1)
                gevent.sleep(0.01)
        def query():
            db.execute_sql("SELECT pg_sleep(0.5)")
            db.close()
        start = time.monotonic()
        gevent.joinall([gevent.spawn(query), gevent.spawn(ticker)])
        print(len(ticks), round(time.monotonic() - start, 2))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": SRC})
    assert out.returncode == 0, out.stderr
    ticks, elapsed = out.stdout.split()
    assert int(ticks) >= 30  # the ticker kept running during the 0.5 s query
    assert float(elapsed) < 1.0


def test_held_lock_has_one_holder_until_released(postgres: Postgres) -> None:
    from zotpy.meta.advisory import HeldAdvisoryLock

    connect = connector(postgres.cache_driver(postgres.url()))
    first, second = HeldAdvisoryLock(connect, "ns", "scheduler"), HeldAdvisoryLock(connect, "ns", "scheduler")
    assert first.try_acquire()
    assert first.try_acquire()  # already held
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()
