"""A tiny Docker token service for bearer-auth tests (the ``realm`` clients log in through).

``TokenService`` serves ``GET /token?service=...&scope=...`` from a thread (werkzeug's WSGI server) on a
free port.  Callers authenticate with Basic auth against a fixed table (user -> password and a map of
repository glob -> allowed actions); the token grants, for each requested ``repository:<name>:<actions>``
scope, the requested actions the table allows.  Tokens are ES256 JWTs signed with a fresh test key whose
self-signed certificate (``cert``) is what the registry's ``http.auth.bearer.cert`` points at.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from werkzeug.serving import make_server

from helpers.tls import self_signed_cert

ISSUER = "zotpy-test-token-service"
LIFETIME = 300


@dataclass(frozen=True)
class Account:
    password: str
    grants: Mapping[str, Iterable[str]] = field(default_factory=dict)  # repository glob -> actions

    def allowed(self, repository: str) -> set[str]:
        actions: set[str] = set()
        for pattern, granted in self.grants.items():
            if fnmatch.fnmatchcase(repository, pattern):
                actions.update(granted)
        return actions


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """``repository:<name>:<a,b>`` -> (type, name, actions); names may hold ``:`` (a port)."""
    kind, _, rest = scope.partition(":")
    name, sep, actions = rest.rpartition(":")
    if not kind or not sep or not name:
        return None
    return kind, name, [action for action in actions.split(",") if action]


class TokenService:
    """A running token service: ``realm`` is its token URL, ``cert``/``key`` its signing pair."""

    def __init__(self, workdir: Path, accounts: Mapping[str, Account], *,
                 service: str = "zotpy-test") -> None:
        self.accounts = dict(accounts)
        self.service = service
        self.cert, self.key_path = self_signed_cert(Path(workdir) / "token-service", "zotpy token service")
        self.private_key = self.key_path.read_text()
        self.requests: list[dict[str, Any]] = []  # what clients asked for, for assertions
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-service", daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def bearer_settings(self) -> dict[str, Any]:
        """An ``http.auth.bearer`` section that trusts this service."""
        return {"realm": self.realm, "service": self.service, "cert": str(self.cert)}

    def start(self) -> TokenService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(10)
        self._server.server_close()

    def __enter__(self) -> TokenService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def issue(self, subject: str, access: list[dict[str, Any]], **claims: Any) -> str:
        """A token signed with the service's key; ``claims`` override the defaults (``exp``, ``aud``...)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER, "sub": subject, "aud": self.service, "iat": now, "nbf": now,
            "exp": now + LIFETIME, "jti": uuid.uuid4().hex, "access": access,
        }
        payload.update(claims)
        return jwt.encode({k: v for k, v in payload.items() if v is not None}, self.private_key,
                          algorithm="ES256")

    # -- the WSGI application ---------------------------------------------------------------------
    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if environ.get("PATH_INFO") != "/token" or environ.get("REQUEST_METHOD") != "GET":
            return _answer(start_response, "404 Not Found", {"details": "not found"})
        user = self._basic_user(environ.get("HTTP_AUTHORIZATION", ""))
        self.requests.append({"user": user, "service": query.get("service"), "scope": query.get("scope")})
        if user is False:
            return _answer(start_response, "401 Unauthorized", {"details": "bad credentials"},
                           [("WWW-Authenticate", 'Basic realm="token"')])
        access = []
        for scope in query.get("scope", []):
            for part in scope.split(" "):
                parsed = parse_scope(part)
                if parsed is None or parsed[0] != "repository":
                    continue
                _, name, wanted = parsed
                account = self.accounts.get(user) if isinstance(user, str) else None
                allowed = account.allowed(name) if account else set()
                granted = [action for action in wanted if action in allowed]
                access.append({"type": "repository", "name": name, "actions": granted})
        token = self.issue(user if isinstance(user, str) else "", access)
        body = {"token": token, "access_token": token, "expires_in": LIFETIME,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return _answer(start_response, "200 OK", body)

    def _basic_user(self, header: str) -> str | bool | None:
        """The authenticated user; None without credentials; False for wrong ones."""
        if not header:
            return None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        account = self.accounts.get(user)
        return user if account is not None and account.password == password else False


def _answer(start_response: Any, status: str, body: Mapping[str, Any],
            headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            *(headers or [])])
    return [data]
