"""SIGTERM: in-flight requests finish, the server exits promptly, and uploads resume after a restart."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from helpers.layout import digest_of
from helpers.registry_client import describe, expect
from helpers.server import Server

pytestmark = pytest.mark.integration

PROMPT_EXIT = 10.0  # seconds; the grace period is for in-flight requests, not for idle connections


def test_sigterm_after_requests_exits_promptly(server_factory: Callable[..., Server], repo_name: str) -> None:
    server = server_factory()
    registry = server.client()
    for _ in range(4):
        expect(registry.push_blob_post_put(repo_name, os.urandom(1000)), 201)
    registry.close()

    started = time.monotonic()
    server.terminate()
    code = server.wait_exit(PROMPT_EXIT)
    elapsed = time.monotonic() - started
    assert code == 0, f"still running {elapsed:.1f}s after SIGTERM (exit code {code})\n{server.logs()}"


def test_sigterm_with_idle_keepalive_connection_exits_promptly(server_factory: Callable[..., Server]) -> None:
    server = server_factory()
    session = requests.Session()
    try:
        assert session.get(f"{server.url}/v2/", timeout=10).status_code == 200  # connection stays open
        server.terminate()
        code = server.wait_exit(PROMPT_EXIT)
        assert code == 0, f"an idle keep-alive connection held shutdown (exit code {code})\n{server.logs()}"
    finally:
        session.close()


def test_sigterm_lets_an_inflight_upload_finish(
    server_factory: Callable[..., Server], repo_name: str
) -> None:
    server = server_factory()
    registry = server.client()
    data = os.urandom(4 * 1024 * 1024)
    location = registry.upload_location(repo_name)
    halfway, signalled = threading.Event(), threading.Event()
    result: dict[str, requests.Response | BaseException] = {}

    def body() -> Iterator[bytes]:
        yield data[: len(data) // 2]
        halfway.set()
        signalled.wait(30)  # the rest is sent only once the server has been told to stop
        yield data[len(data) // 2 :]

    def upload() -> None:
        try:
            result["resp"] = registry.patch_stream(location, body())
        except BaseException as exc:  # reported by the main thread
            result["resp"] = exc

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        assert halfway.wait(30), "the upload never started"
        server.terminate()
    finally:
        signalled.set()
        thread.join(60)
    resp = result.get("resp")
    assert isinstance(resp, requests.Response), f"in-flight PATCH failed: {resp!r}\n{server.logs()}"
    assert resp.status_code == 202, describe(resp)
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    registry.close()
    assert server.wait_exit(40) == 0, server.logs()

    server.start()
    status = expect(registry.upload_status(location), 204)
    assert status.headers["Range"] == f"0-{len(data) - 1}"
    expect(
        registry.finish_upload(registry.url(status.headers.get("Location", location)), digest_of(data)), 201
    )
    assert expect(registry.get_blob(repo_name, digest_of(data)), 200).content == data
