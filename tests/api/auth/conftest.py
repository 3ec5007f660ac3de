"""Fixtures for the access-control API tests: an app with ``http.auth`` / ``accessControl`` and a client
that pushes small images as a given user."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from helpers.auth_policy import POLICY, USERS
from helpers.auth_policy import push as push_image
from helpers.htpasswd import basic, write_htpasswd
from zotpy.app import create_app, prepare
from zotpy.config import check_runnable, load_mapping


class Client:
    """The Flask test client with a user's credentials on every request."""

    def __init__(self, client: FlaskClient, user: str | None = None, password: str | None = None) -> None:
        self.client = client
        self.headers = basic(user, password if password is not None else USERS[user]) if user else {}

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                **kwargs: Any) -> Any:
        response = self.client.open(path, method=method, headers={**self.headers, **(headers or {})},
                                    **kwargs)
        assert response.status_code < 500, response.get_data(as_text=True)
        return response

    def push_image(self, repo: str, tag: str = "latest", payload: bytes = b"layer") -> Any:
        def send(method: str, path: str, **kwargs: Any) -> Any:
            return self.request(method, path, **kwargs)

        return push_image(send, repo, tag, payload)


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., Callable[..., Client]]:
    """Build an app with ``http`` extras (auth, accessControl) and return a factory of user clients."""

    def build(http: Mapping[str, Any] | None = None, *, auth: Mapping[str, Any] | None = None,
              policy: Mapping[str, Any] | None = POLICY,
              users: Mapping[str, str] = USERS, extensions: Mapping[str, Any] | None = None
              ) -> Callable[..., Client]:
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        htpasswd = write_htpasswd(tmp_path / "htpasswd", users)
        section: dict[str, Any] = {"auth": {"htpasswd": {"path": str(htpasswd)}, **(auth or {})}}
        if policy is not None:
            section["accessControl"] = json.loads(json.dumps(policy))
        section.update(http or {})
        doc: dict[str, Any] = {"distSpecVersion": "1.1.1", "storage": {"rootDirectory": str(root)},
                               "http": section}
        if extensions is not None:
            doc["extensions"] = extensions
        config = load_mapping(doc)
        check_runnable(config)
        prepare(config)
        app = create_app(config)
        app.testing = True
        flask_client = app.test_client()

        def client(user: str | None = None, password: str | None = None) -> Client:
            return Client(flask_client, user, password)

        return client

    return build
