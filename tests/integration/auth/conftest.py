"""A live gunicorn with htpasswd, API keys, zot's example policy and search, shared by the auth tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from helpers.auth_policy import POLICY, REPOS, USERS, push
from helpers.htpasswd import basic, write_htpasswd
from helpers.server import LiveServer, make_server

HASH_COST = 8
"""bcrypt cost of the test users: ~15 ms a check, so hashing dominates the timing comparisons."""


class UserSession:
    """``requests`` against the live server as one user (or anonymous)."""

    def __init__(self, server: LiveServer, user: str | None, password: str | None = None) -> None:
        self.server = server
        self.session = requests.Session()
        self.headers = basic(user, password or USERS[user]) if user else {}

    def send(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
             ) -> requests.Response:
        response = self.session.request(method, self.server.url + path,
                                        headers={**self.headers, **(headers or {})},
                                        timeout=30, allow_redirects=False, **kwargs)
        assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:300]}"
        return response

    def push(self, repo: str, tag: str, payload: bytes = b"layer") -> requests.Response:
        return push(self.send, repo, tag, payload)

    def close(self) -> None:
        self.session.close()


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("auth-server")
    htpasswd = write_htpasswd(workdir / "htpasswd", USERS, cost=HASH_COST)
    http = {"auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True}, "accessControl": POLICY}
    server = make_server(workdir, http_extra=http, extensions={"search": {"enable": True}},
                         extra_env={"ZOTPY_TRUSTED_PROXIES": "127.0.0.1", "ZOTPY_AUTH_FAILURES": "5/60"})
    assert isinstance(server, LiveServer), "auth tests need zotpy"
    server.start()
    try:
        admin = UserSession(server, "admin")
        for repo in REPOS:
            response = admin.push(repo, "latest", f"base of {repo}".encode())
            assert response.status_code == 201, response.text
        admin.close()
        yield server
    finally:
        server.stop()


@pytest.fixture
def as_user(auth_server: LiveServer) -> Iterator[Any]:
    opened: list[UserSession] = []

    def make(user: str | None, password: str | None = None) -> UserSession:
        session = UserSession(auth_server, user, password)
        opened.append(session)
        return session

    yield make
    for session in opened:
        session.close()

