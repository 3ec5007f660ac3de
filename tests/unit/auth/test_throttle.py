"""Failure throttling and the client address behind trusted proxies."""

from __future__ import annotations

from pathlib import Path

import pytest

from zotpy.auth.throttle import FailureThrottle
from zotpy.errors import ConfigError
from zotpy.meta.authmodels import AuthTables
from zotpy.meta.db import open_database


@pytest.fixture
def tables(tmp_path: Path) -> AuthTables:
    made = AuthTables(open_database(str(tmp_path / "auth.db")))
    made.ensure_schema()
    return made


def test_client_address_trusts_only_configured_proxies(tables: AuthTables) -> None:
    throttle = FailureThrottle(tables, {"ZOTPY_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    forwarded = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "198.51.100.9, 203.0.113.4, 10.0.0.7"}
    assert throttle.client(forwarded) == "203.0.113.4"  # the last hop not itself a proxy
    assert throttle.client({**forwarded, "REMOTE_ADDR": "192.0.2.1"}) == "192.0.2.1"
    assert throttle.client({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "garbage"}) == "10.0.0.5"
    assert FailureThrottle(tables, {}).client(forwarded) == "10.0.0.5"


def test_failures_block_until_the_window_passes(tables: AuthTables, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("zotpy.auth.throttle.time.time", lambda: now[0])
    throttle = FailureThrottle(tables, {"ZOTPY_AUTH_FAILURES": "2/30"})
    other_worker = FailureThrottle(tables, {"ZOTPY_AUTH_FAILURES": "2/30"})
    throttle.failed("a")
    assert throttle.retry_after("a") == 0
    other_worker.failed("a")
    assert throttle.retry_after("a") == 30 and throttle.retry_after("b") == 0
    now[0] += 10
    assert other_worker.retry_after("a") == 20
    now[0] += 21
    assert throttle.retry_after("a") == 0
    throttle.failed("b")  # old failures are cleared as new ones come
    assert tables.failure.select().count() == 1


def test_throttling_can_be_switched_off_and_bad_values_are_config_errors(tables: AuthTables) -> None:
    off = FailureThrottle(tables, {"ZOTPY_AUTH_FAILURES": "0"})
    for _ in range(100):
        off.failed("a")
    assert off.retry_after("a") == 0
    with pytest.raises(ConfigError, match="ZOTPY_AUTH_FAILURES"):
        FailureThrottle(tables, {"ZOTPY_AUTH_FAILURES": "many"})
    with pytest.raises(ConfigError, match="ZOTPY_TRUSTED_PROXIES"):
        FailureThrottle(tables, {"ZOTPY_TRUSTED_PROXIES": "proxy.example"})
