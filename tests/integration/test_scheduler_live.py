"""The scheduler process under a live gunicorn: started and stopped by the hooks, never orphaned,
alone on its storage root, and unbothered by a failing step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.gc_server import StorageConfiguredServer
from helpers.layout import build_image
from helpers.registry_client import expect
from helpers.server import registry_flavor

pytestmark = pytest.mark.skipif(registry_flavor() != "zotpy", reason="zotpy's scheduler process")

FAST_GC = {"gc": True, "gcDelay": "1s", "gcInterval": "1s"}


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def started_schedulers(server: StorageConfiguredServer) -> list[int]:
    return [r["pid"] for r in server.log_records() if r.get("message") == "scheduler started"]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., StorageConfiguredServer]]:
    servers: list[StorageConfiguredServer] = []

    def start(storage: dict[str, Any] | None = None, **options: Any) -> StorageConfiguredServer:
        server = StorageConfiguredServer(tmp_path / f"s{len(servers)}", storage=storage or FAST_GC, **options)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        pid = server.proc.pid if server.proc else None
        server.stop()
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)  # workers orphaned by a SIGKILL test
            except ProcessLookupError:
                pass


def scheduler_of(server: StorageConfiguredServer) -> int:
    pids = wait_for(lambda: started_schedulers(server), 15, "the scheduler logs its start")
    assert len(pids) == 1
    return int(pids[0])


def test_hooks_start_it_and_sigterm_of_the_master_stops_it(
        make: Callable[..., StorageConfiguredServer]) -> None:
    server = make()
    pid = scheduler_of(server)
    assert server.proc is not None and parent_of(pid) == server.proc.pid
    assert os.getpriority(os.PRIO_PROCESS, pid) >= min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)  # niced
    # It holds none of the master's descriptors: the listening socket is not kept open by it.
    links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    assert not [link for link in links if link.startswith("socket:")], links
    server.stop()
    wait_for(lambda: not alive(pid), 10, "the scheduler exits with the server")
    assert any(r.get("message") == "scheduler stopped" and r.get("pid") == pid for r in server.log_records())


def test_sigkill_of_the_master_leaves_no_orphan(make: Callable[..., StorageConfiguredServer]) -> None:
    server = make()
    pid = scheduler_of(server)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    wait_for(lambda: not alive(pid), 10, "the scheduler notices its parent died and exits")


def test_a_second_scheduler_on_the_same_root_stays_idle(make: Callable[..., StorageConfiguredServer]) -> None:
    server = make()
    scheduler_of(server)
    log = server.workdir / "second.log"
    with log.open("wb") as out:
        second = subprocess.Popen([sys.executable, "-m", "zotpy.cli", "scheduler", str(server.config_path)],
                                  env=server.environment(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "staying idle" in log.read_text(), 15, "the second scheduler reports it is idle")
        time.sleep(2.5)  # two GC intervals: it still runs nothing
        text = log.read_text()
        assert "scheduler started" not in text and "job finished" not in text
        assert second.poll() is None
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(10) == 0


def test_external_scheduler_mode(make: Callable[..., StorageConfiguredServer]) -> None:
    """``ZOTPY_SCHEDULER=external``: the hooks start none and ``zotpy scheduler CONFIG`` does the work."""
    server = make(extra_env={"ZOTPY_SCHEDULER": "external"})
    client = server.client()
    image = build_image(n_layers=1)
    client.push_image("ext", image, "v1")
    client.push_image("ext", build_image(n_layers=1), "v2")
    expect(client.delete_manifest("ext", "v1"), 202)
    time.sleep(2.5)
    assert not started_schedulers(server)
    assert (server.root / "ext" / "blobs" / "sha256" / image.digest.split(":")[1]).exists()
    log = server.workdir / "external.log"
    with log.open("wb") as out:
        external = subprocess.Popen([sys.executable, "-m", "zotpy.cli", "scheduler", str(server.config_path)],
                                    env=server.environment(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: not (server.root / "ext" / "blobs" / "sha256" / image.digest.split(":")[1]).exists(),
                 15, "the standalone scheduler collects the untagged image")
    finally:
        external.send_signal(signal.SIGTERM)
        assert external.wait(10) == 0


def test_a_failing_step_does_not_stop_the_scheduler(make: Callable[..., StorageConfiguredServer]) -> None:
    server = make()
    pid = scheduler_of(server)
    client = server.client()
    client.push_image("aaa/broken", build_image(n_layers=1), "v1")
    # index.json replaced by a directory: reading it fails on every GC run.
    index = server.root / "aaa" / "broken" / "index.json"
    index.unlink()
    index.mkdir()
    image = build_image(n_layers=1)
    client.push_image("zzz/fine", image, "v1")
    client.push_image("zzz/fine", build_image(n_layers=1), "v2")
    expect(client.delete_manifest("zzz/fine", "v1"), 202)
    config = server.root / "zzz" / "fine" / "blobs" / "sha256" / image.config.digest.split(":")[1]
    wait_for(lambda: not config.exists(), 15, "the repository after the failing one is still collected")

    def failed_runs() -> list[dict[str, Any]]:
        return [r for r in server.log_records() if r.get("message") == "job finished"
                and r.get("job") == "gc /" and r.get("failed", 0) >= 1]

    wait_for(lambda: len(failed_runs()) >= 2, 10, "several GC runs, each with the failing step")
    failures = [r for r in server.log_records() if r.get("message") == "job step failed"]
    assert failures and failures[0]["job"] == "gc /"
    assert "Traceback" in failures[0]["exception"] and "index.json" in failures[0]["exception"]
    assert alive(pid)
    expect(client.get_manifest("zzz/fine", "v2"), 200)
