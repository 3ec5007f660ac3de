"""The scheduler process pieces: the per-root lock, idling while another instance holds it, the jobs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from zotpy.app import build_registry
from zotpy.config.loader import load_mapping
from zotpy.scheduler.jobs import collect, in_time_window
from zotpy.scheduler.process import RootLocks, Scheduler


def config(tmp_path: Path, **storage: object):  # type: ignore[no-untyped-def]
    return load_mapping({"storage": {"rootDirectory": str(tmp_path / "root"), **storage},
                         "http": {"address": "127.0.0.1", "port": "5000"}})


def test_root_locks_are_exclusive_and_all_or_none(tmp_path: Path) -> None:
    first = RootLocks([str(tmp_path / "a"), str(tmp_path / "b")])
    assert first.try_acquire()
    second = RootLocks([str(tmp_path / "b"), str(tmp_path / "c")])
    assert not second.try_acquire()
    third = RootLocks([str(tmp_path / "c")])
    assert third.try_acquire()  # "c" was not left held by the failed attempt
    third.release()
    first.release()
    assert second.try_acquire()
    second.release()


def test_a_second_scheduler_stays_idle_until_the_lock_frees(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    holder = Scheduler(cfg)
    assert holder.locks.try_acquire()
    waiting = Scheduler(cfg, lock_retry=0.05)
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(waiting.wait_for_locks()))
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and not got  # idle while the lock is held
    holder.locks.release()
    thread.join(5)
    assert got == [True]
    waiting.locks.release()


def test_a_waiting_scheduler_stops_when_asked(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    holder = Scheduler(cfg)
    assert holder.locks.try_acquire()
    waiting = Scheduler(cfg, lock_retry=30)
    threading.Timer(0.2, waiting.stop).start()
    assert waiting.wait_for_locks() is False
    holder.locks.release()


def test_gc_jobs_per_store_with_gc_on(tmp_path: Path) -> None:
    cfg = load_mapping({"storage": {"rootDirectory": str(tmp_path / "root"), "gcInterval": "2s",
                                    "subPaths": {"/a": {"rootDirectory": str(tmp_path / "a"), "gcDelay": "1s",
                                                        "gcInterval": "5s"},
                                                 "/b": {"rootDirectory": str(tmp_path / "b"), "gc": False}}}})
    registry, _ = build_registry(cfg)
    jobs = {job.name: job.interval for job in collect(cfg, registry) if job.name.startswith("gc")}
    assert jobs == {"gc /": 2.0, "gc /a": 5.0}


@pytest.mark.parametrize(("window", "hour", "minute", "inside"), [
    ("01:00-05:00", 3, 0, True),
    ("01:00-05:00", 5, 0, False),
    ("01:00-05:00", 0, 59, False),
    ("22:00-02:00", 23, 30, True),
    ("22:00-02:00", 1, 59, True),
    ("22:00-02:00", 12, 0, False),
])
def test_gc_time_window(window: str, hour: int, minute: int, inside: bool) -> None:
    assert in_time_window(window, datetime(2026, 1, 1, hour, minute, tzinfo=UTC)) is inside


def test_outside_the_window_a_sweep_does_not_start(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    start = (now.hour + 2) % 24
    window = f"{start:02d}:00-{(start + 1) % 24:02d}:00"
    (tmp_path / "root" / "repo").mkdir(parents=True)
    cfg = config(tmp_path, gcTimeWindow=window)
    registry, _ = build_registry(cfg)
    registry.stores.default.ensure_repo("repo")
    job = next(job for job in collect(cfg, registry) if job.name == "gc /")
    assert list(job.steps()) == []
    cfg = config(tmp_path)
    job = next(job for job in collect(cfg, registry) if job.name == "gc /")
    assert len(list(job.steps())) == 1
