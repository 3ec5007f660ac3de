"""Tests for zotpy.meta.storeindex: blob locations, repositories, catalog pages, merging a storage walk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import zotpy
from zotpy.meta.db import DEFAULT_DB_NAME, open_database
from zotpy.meta.storeindex import StoreIndex

SRC = str(Path(zotpy.__file__).resolve().parent.parent)
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
NAMES = ["z", "a/b", "a", "a-b", "a.b", "B", "ab", "é", "a/b/c", "a0", "~"]


@pytest.fixture(params=["sqlite", "postgresql"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreIndex]:
    """The index on the embedded SQLite file, and on PostgreSQL (a fresh schema of the session's cluster)."""
    if request.param == "sqlite":
        yield StoreIndex(open_database(str(tmp_path / DEFAULT_DB_NAME)))
        return
    from zotpy.meta.postgres import open_postgres

    db = open_postgres(request.getfixturevalue("postgres").cache_driver())
    yield StoreIndex(db)
    db.close_all()


def test_locations_oldest_first(index: StoreIndex) -> None:
    assert index.locations(DIGEST_A) == []
    index.add_location(DIGEST_A, "r2/blobs/sha256/" + "a" * 64)
    index.add_location(DIGEST_A, "r1/blobs/sha256/" + "a" * 64)
    index.add_location(DIGEST_B, "r1/blobs/sha256/" + "b" * 64)
    assert index.locations(DIGEST_A) == ["r2/blobs/sha256/" + "a" * 64, "r1/blobs/sha256/" + "a" * 64]
    assert index.locations(DIGEST_B) == ["r1/blobs/sha256/" + "b" * 64]


def test_location_changes_are_idempotent(index: StoreIndex) -> None:
    index.add_location(DIGEST_A, "old")
    index.add_location(DIGEST_A, "new")
    index.add_location(DIGEST_A, "old")
    assert index.locations(DIGEST_A) == ["old", "new"]
    index.remove_location(DIGEST_A, "old")
    index.remove_location(DIGEST_A, "old")
    index.remove_location(DIGEST_B, "new")
    assert index.locations(DIGEST_A) == ["new"]
    index.add_location(DIGEST_A, "old")
    assert index.locations(DIGEST_A) == ["new", "old"]


def test_repositories(index: StoreIndex) -> None:
    assert not index.has_repository("a/b")
    index.add_repository("a/b")
    index.add_repository("a/b")
    assert index.has_repository("a/b")
    assert not index.has_repository("a")
    assert index.list_repositories() == ["a/b"]
    index.remove_repository("a/b")
    index.remove_repository("a/b")
    assert not index.has_repository("a/b")
    assert index.list_repositories() == []


@pytest.fixture
def catalog(index: StoreIndex) -> StoreIndex:
    for name in NAMES:
        index.add_repository(name)
    return index


def test_list_repositories_sorted_like_python(catalog: StoreIndex) -> None:
    assert catalog.list_repositories() == sorted(NAMES)
    assert catalog.list_repositories(last="") == sorted(NAMES)


@pytest.mark.parametrize(
    ("last", "limit"),
    [
        (None, 1),
        (None, 3),
        (None, 100),
        ("a", None),
        ("a", 2),
        ("a/b", 3),
        ("a/a", 2),
        ("A", None),
        ("~", None),
        ("~~", 5),
        ("é", 1),
    ],
)
def test_list_repositories_pages(catalog: StoreIndex, last: str | None, limit: int | None) -> None:
    expected = [name for name in sorted(NAMES) if last is None or name > last]
    assert catalog.list_repositories(last=last, limit=limit) == expected[:limit]


@pytest.mark.parametrize("limit", [0, -1])
def test_list_repositories_empty_page(catalog: StoreIndex, limit: int) -> None:
    assert catalog.list_repositories(limit=limit) == []


def test_paging_visits_every_repository_once(catalog: StoreIndex) -> None:
    seen: list[str] = []
    last = None
    while page := catalog.list_repositories(last=last, limit=3):
        seen += page
        last = page[-1]
    assert seen == sorted(NAMES)


@pytest.mark.parametrize("index", ["sqlite"], indirect=True)  # reads SQLite's query plan
def test_catalog_page_uses_an_index(catalog: StoreIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    db = catalog.db
    executed: list[tuple[str, Any]] = []
    real = db.execute_sql

    def record(sql: str, params: Any = None) -> Any:
        executed.append((sql, params))
        return real(sql, params)

    monkeypatch.setattr(db, "execute_sql", record)
    catalog.list_repositories(last="a", limit=2)
    monkeypatch.undo()
    [(sql, params)] = executed
    assert "LIMIT" in sql
    plan = " ".join(str(row[-1]) for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
    assert "INDEX" in plan
    assert "TEMP B-TREE" not in plan


def test_add_all_merges_with_what_is_recorded(index: StoreIndex) -> None:
    index.add_repository("other")
    index.add_location(DIGEST_A, "other/blobs")
    index.add_all(
        iter(["b", "a", "b"]),
        iter([(DIGEST_A, "b/blobs"), (DIGEST_A, "a/blobs"), (DIGEST_A, "b/blobs"), (DIGEST_B, "a/x"),
              (DIGEST_A, "other/blobs")]),
    )
    assert index.list_repositories() == ["a", "b", "other"]
    # Rows already recorded keep their place (the oldest copy of a digest is the original).
    assert index.locations(DIGEST_A) == ["other/blobs", "b/blobs", "a/blobs"]
    assert index.locations(DIGEST_B) == ["a/x"]


def test_all_locations_pages_in_id_order(index: StoreIndex) -> None:
    pairs = [(DIGEST_A if i % 2 else DIGEST_B, f"r{i}/blobs") for i in range(1000)]
    index.add_all([], pairs)
    index.remove_location(*pairs[3])
    assert list(index.all_locations()) == pairs[:3] + pairs[4:]


def test_add_all_handles_100k_rows(index: StoreIndex) -> None:
    count = 100_000
    start = time.monotonic()
    index.add_all(
        (f"repo{i:06d}" for i in range(count)),
        ((f"sha256:{i:064x}", f"repo{i:06d}/blobs/sha256/{i:064x}") for i in range(count)),
    )
    elapsed = time.monotonic() - start
    assert elapsed < 30
    assert index.list_repositories(last="repo099997") == ["repo099998", "repo099999"]
    assert index.locations(f"sha256:{5:064x}") == [f"repo000005/blobs/sha256/{5:064x}"]
    assert sum(1 for _ in index.all_locations()) == count


def test_indexes_on_different_databases_are_independent(tmp_path: Path) -> None:
    first = StoreIndex(open_database(str(tmp_path / "1" / DEFAULT_DB_NAME)))
    second = StoreIndex(open_database(str(tmp_path / "2" / DEFAULT_DB_NAME)))
    first.add_repository("only-here")
    assert second.list_repositories() == []
    assert first.list_repositories() == ["only-here"]


def test_index_survives_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / DEFAULT_DB_NAME)
    StoreIndex(open_database(path)).add_location(DIGEST_A, "a/blobs")
    assert StoreIndex(open_database(path)).locations(DIGEST_A) == ["a/blobs"]


WRITER_SCRIPT = """
    import os, sys, time
    from zotpy.meta.db import open_database
    from zotpy.meta.storeindex import StoreIndex

    path, me, other = sys.argv[1:]
    directory = os.path.dirname(path)
    open(os.path.join(directory, me), "w").close()
    while not os.path.exists(os.path.join(directory, other)):  # start together
        time.sleep(0.001)
    index = StoreIndex(open_database(path))
    index.add_repository(me)
    for i in range(200):
        index.add_location("sha256:" + "a" * 64, f"{me}/blobs/{i}")
        if i % 40:
            index.add_location(f"sha256:{i:064x}", f"{me}/blobs/{i}")
            continue
        with index.db.atomic():  # a slow transaction: the other writer outwaits SQLite's busy timeout
            index.add_location(f"sha256:{i:064x}", f"{me}/blobs/{i}")
            time.sleep(0.08)
"""


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    path = str(tmp_path / DEFAULT_DB_NAME)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER_SCRIPT), path, me, other],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me, other in (("w1", "w2"), ("w2", "w1"))
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    index = StoreIndex(open_database(path))
    assert index.list_repositories() == ["w1", "w2"]
    assert len(index.locations("sha256:" + "a" * 64)) == 400
    assert index.locations(f"sha256:{7:064x}") in (["w1/blobs/7", "w2/blobs/7"], ["w2/blobs/7", "w1/blobs/7"])
