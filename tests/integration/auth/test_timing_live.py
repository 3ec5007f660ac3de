"""No username enumeration by timing, and throttling of repeated failures, against a live gunicorn."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

from helpers.auth_policy import USERS

pytestmark = pytest.mark.integration

TRIES = 50


def test_unknown_user_and_wrong_password_take_the_same_time(as_user: Any) -> None:
    """Over 50 tries each, the medians differ by less than 10%."""
    unknown, wrong = as_user("no-such-user", "guess"), as_user("eve", "not-eves-password")
    times: dict[str, list[float]] = {"unknown": [], "wrong": []}
    for attempt in range(TRIES * 2 + 4):
        # each try from its own client address (the test server trusts 127.0.0.1 as a proxy), so the
        # failure throttle never answers in place of the password check
        client = f"198.18.{attempt // 250}.{attempt % 250 + 1}"
        kind = "unknown" if attempt % 2 else "wrong"
        session = unknown if kind == "unknown" else wrong
        started = time.perf_counter()
        response = session.send("GET", "/v2/", headers={"X-Forwarded-For": client})
        elapsed = time.perf_counter() - started
        assert response.status_code == 401, response.text
        if attempt >= 4:  # the first tries warm both workers up
            times[kind].append(elapsed)
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    assert len(times["unknown"]) == len(times["wrong"]) == TRIES
    difference = abs(medians["unknown"] - medians["wrong"]) / max(medians.values())
    print(f"median seconds {medians}, relative difference {difference:.3f}")
    assert difference < 0.10, medians
    assert min(medians.values()) > 0.003, f"the hash check should dominate: {medians}"


def test_repeated_failures_from_one_client_are_throttled(as_user: Any) -> None:
    client = {"X-Forwarded-For": "198.19.7.7"}
    bad, good = as_user("eve", "bad-password"), as_user("eve")
    statuses = [bad.send("GET", "/v2/", headers=client).status_code for _ in range(12)]
    assert 429 in statuses and set(statuses) <= {401, 429}, statuses
    blocked = good.send("GET", "/v2/", headers=client)
    assert blocked.status_code == 429 and blocked.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert int(blocked.headers["Retry-After"]) > 0
    # another client is not affected, nor is eve from elsewhere
    assert good.send("GET", "/v2/", headers={"X-Forwarded-For": "198.19.8.8"}).status_code == 200
    assert USERS["eve"]
