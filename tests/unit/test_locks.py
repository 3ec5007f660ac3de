"""Tests for zotpy.locks: exclusion between threads, processes and greenlets, safe paths, timeouts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import zotpy
from zotpy.locks import LockSet, LockTimeout

SRC = str(Path(zotpy.__file__).resolve().parent.parent)


def run_python(script: str, *args: str) -> subprocess.Popen[str]:
    """Start ``script`` in a fresh interpreter that can import zotpy."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait for ``process`` and return its output, failing the test if it failed."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def test_lock_excludes_threads(tmp_path: Path) -> None:
    locks = LockSet(str(tmp_path / "locks"))
    state = {"inside": 0, "overlaps": 0, "count": 0}

    def work() -> None:
        for _ in range(50):
            with locks.lock("repo"):
                state["inside"] += 1
                if state["inside"] > 1:
                    state["overlaps"] += 1
                value = state["count"]
                time.sleep(0)
                state["count"] = value + 1
                state["inside"] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert state == {"inside": 0, "overlaps": 0, "count": 400}


COUNTER_SCRIPT = """
    import os, sys, time
    from zotpy.locks import LockSet

    directory, counter, me, other = sys.argv[1:]
    open(os.path.join(directory, me), "w").close()
    while not os.path.exists(os.path.join(directory, other)):  # start together
        time.sleep(0.001)
    locks = LockSet(os.path.join(directory, "locks"))
    for _ in range(200):
        with locks.lock("a/b/c"):
            with open(counter) as f:
                value = int(f.read())
            with open(counter, "w") as f:
                f.write(str(value + 1))
"""


def test_lock_excludes_processes(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    processes = [
        run_python(COUNTER_SCRIPT, str(tmp_path), str(counter), "ready-1", "ready-2"),
        run_python(COUNTER_SCRIPT, str(tmp_path), str(counter), "ready-2", "ready-1"),
    ]
    for process in processes:
        finish(process)
    assert counter.read_text() == "400"


GEVENT_SCRIPT = """
    from gevent import monkey

    monkey.patch_all()

    import fcntl, json, os, sys
    import gevent
    from zotpy.locks import LockSet

    directory = sys.argv[1]
    # Two sets on one directory: their greenlets contend on the flock itself, not only in-process.
    sets = [LockSet(directory), LockSet(directory)]
    state = {"ticks": 0, "inside": 0, "max_inside": 0, "done": 0}

    def tick():
        while True:
            gevent.sleep(0.001)
            state["ticks"] += 1

    def work(locks):
        with locks.lock("a/b/c"):
            state["inside"] += 1
            state["max_inside"] = max(state["max_inside"], state["inside"])
            gevent.sleep(0.001)
            state["inside"] -= 1
            state["done"] += 1

    # Hold the lock file as another process would, while the greenlets queue up behind it.
    fd = os.open(sets[0].path("a/b/c"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    ticker = gevent.spawn(tick)
    workers = [gevent.spawn(work, sets[i % 2]) for i in range(50)]
    gevent.sleep(0.3)
    ticks_while_held = state["ticks"]
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    gevent.joinall(workers, timeout=30, raise_error=True)
    ticker.kill()
    print(json.dumps(dict(state, ticks_while_held=ticks_while_held)))
"""


def test_lock_under_gevent_never_blocks_the_loop(tmp_path: Path) -> None:
    pytest.importorskip("gevent")
    result = json.loads(finish(run_python(GEVENT_SCRIPT, str(tmp_path)), timeout=60))
    assert result["done"] == 50
    assert result["max_inside"] == 1
    assert result["ticks_while_held"] > 10
    assert result["ticks"] > result["ticks_while_held"]


@pytest.mark.parametrize("name", ["a/b/c", "../escape", "../../etc/passwd", "/absolute", "..", ".", ""])
def test_lock_files_stay_in_the_directory(tmp_path: Path, name: str) -> None:
    directory = tmp_path / "root" / "locks"
    locks = LockSet(str(directory))
    with locks.lock(name):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["locks"]
    files = [p.name for p in directory.iterdir()]
    assert len(files) == 1
    assert re.fullmatch(r"[0-9a-f]{32}\.lock", files[0])


def test_directory_is_created_private(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "locks"
    LockSet(str(directory))
    assert directory.is_dir()
    assert directory.stat().st_mode & 0o777 == 0o700


def test_distinct_names_do_not_exclude_each_other(tmp_path: Path) -> None:
    locks = LockSet(str(tmp_path))
    with locks.lock("a"), locks.lock("b", timeout=0.1):
        pass


def test_timeout_while_held_in_process(tmp_path: Path) -> None:
    locks = LockSet(str(tmp_path))
    with locks.lock("repo"):
        start = time.monotonic()
        with pytest.raises(LockTimeout), locks.lock("repo", timeout=0.1):
            pass
        assert time.monotonic() - start >= 0.09


def test_timeout_while_file_lock_held_elsewhere(tmp_path: Path) -> None:
    holder, waiter = LockSet(str(tmp_path)), LockSet(str(tmp_path))
    with holder.lock("repo"):
        with pytest.raises(LockTimeout) as caught, waiter.lock("repo", timeout=0.1):
            pass
        assert caught.value.name == "repo"
    with waiter.lock("repo", timeout=0):
        pass


def test_lock_is_released_after_an_exception(tmp_path: Path) -> None:
    locks, other = LockSet(str(tmp_path)), LockSet(str(tmp_path))
    with pytest.raises(RuntimeError), locks.lock("repo"):
        raise RuntimeError("boom")
    with locks.lock("repo", timeout=0), other.lock("x", timeout=0):
        pass
    with other.lock("repo", timeout=0):
        pass


PATCHED_SCRIPT = """
    from gevent import monkey
    monkey.patch_all()
    import fcntl, json, os, sys, time
    import gevent
    from zotpy.locks import LockSet, LockTimeout

    locks = LockSet(sys.argv[1])
    path = locks.path("repo")
    state = {"ticks": 0}

    def tick():
        while True:
            gevent.sleep(0.001)
            state["ticks"] += 1

    def hold_elsewhere():
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file description: as another process would
        return fd

    ticker = gevent.spawn(tick)
    out = {}
    # 1. A waiter blocked on a lock held elsewhere takes it at once when it is let go.
    fd = hold_elsewhere()
    taken = {}

    def wait():
        with locks.lock("repo"):
            taken["at"] = time.monotonic()

    waiter = gevent.spawn(wait)
    gevent.sleep(0.3)
    out["ticks_while_held"] = state["ticks"]
    released = time.monotonic()
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    waiter.join(10)
    out["handoff_seconds"] = taken["at"] - released
    # 2. A waiter that gives up leaves nothing held once the holder lets go.
    fd = hold_elsewhere()
    try:
        with locks.lock("repo", timeout=0.2):
            out["timed_out"] = False
    except LockTimeout:
        out["timed_out"] = True
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    gevent.sleep(0.2)
    probe = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out["free_after_timeout"] = True
    except OSError:
        out["free_after_timeout"] = False
    finally:
        os.close(probe)
    ticker.kill()
    print(json.dumps(out))
"""


def test_patched_gevent_waits_in_a_thread_hands_off_at_once_and_gives_up_cleanly(tmp_path: Path) -> None:
    pytest.importorskip("gevent")
    result = json.loads(finish(run_python(PATCHED_SCRIPT, str(tmp_path)), timeout=60))
    assert result["ticks_while_held"] > 50  # the loop kept running while the waiter waited
    assert result["handoff_seconds"] < 0.05
    assert result["timed_out"] is True
    assert result["free_after_timeout"] is True
