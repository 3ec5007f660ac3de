"""A slow password check runs off the event loop: the same gevent worker keeps answering meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers.htpasswd import basic, sha_crypt_hash
from helpers.server import LiveServer

pytestmark = pytest.mark.integration


def test_slow_hash_checks_do_not_stall_the_worker(tmp_path: Path, server_factory: Callable[..., Any]) -> None:
    # SHA-crypt with many rounds takes about a second in Python: long enough to see a stall.
    slow = sha_crypt_hash("slow-pw", 6, salt="rounds=700000$slowsalt")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"slow:{slow}\n")
    server: LiveServer = server_factory(workers=1, http_extra={
        "auth": {"htpasswd": {"path": str(htpasswd)}},
        "accessControl": {"repositories": {"**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read"]}}}})
    started = time.perf_counter()
    checks: list[tuple[int, float]] = []

    def log_in(password: str) -> None:
        response = requests.get(f"{server.url}/v2/", headers=basic("slow", password), timeout=60)
        checks.append((response.status_code, time.perf_counter() - started))

    threads = [threading.Thread(target=log_in, args=(password,)) for password in ("slow-pw", "wrong")]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    fast: list[float] = []
    while any(thread.is_alive() for thread in threads):
        before = time.perf_counter()
        assert requests.get(f"{server.url}/v2/_catalog", timeout=30).status_code == 200
        fast.append(time.perf_counter() - before)
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in checks) == [200, 401]
    assert min(elapsed for _, elapsed in checks) > 0.5, "the hash check was expected to be slow"
    assert len(fast) >= 3 and max(fast) < 0.6, f"anonymous requests waited {fast} behind the hash checks"
