"""One scheduler across nodes sharing a PostgreSQL database: the roots' file locks are per node, the
advisory lock is per cluster (a real PostgreSQL from the ``postgres`` fixture)."""

from __future__ import annotations

from pathlib import Path

from helpers.postgres import Postgres
from zotpy.config import Config, load_mapping
from zotpy.scheduler.process import RootLocks, Scheduler


def node_config(root: Path, postgres: Postgres, url: str) -> Config:
    return load_mapping({"storage": {"rootDirectory": str(root),
                                     "cacheDriver": postgres.cache_driver(url)}})


def test_only_one_node_schedules(tmp_path: Path, postgres: Postgres) -> None:
    url = postgres.fresh_url()
    first = Scheduler(node_config(tmp_path / "node1", postgres, url))
    second = Scheduler(node_config(tmp_path / "node2", postgres, url))
    assert first.locks.cluster is not None
    assert first.locks.try_acquire()
    assert not second.locks.try_acquire()  # its own root's file lock is free, the cluster's is not
    assert second.locks._fds == []  # nothing held after a refusal
    first.locks.release()
    assert second.locks.try_acquire()
    second.locks.release()


def test_without_postgresql_the_file_locks_alone_decide(tmp_path: Path) -> None:
    assert RootLocks([str(tmp_path)]).cluster is None
    scheduler = Scheduler(load_mapping({"storage": {"rootDirectory": str(tmp_path)}}))
    assert scheduler.locks.cluster is None
