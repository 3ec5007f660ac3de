"""Who is calling: zot's authentication pipeline, ``authenticate(environ) -> Identity | None``.

In order: more than one ``Authorization`` header is refused; in bearer mode only a valid token
counts; otherwise Basic credentials are checked by each password backend in turn (htpasswd, LDAP,
API keys), and ``Basic Og==`` (an empty ``:``) counts as no credentials; a web UI request
(``X-ZOT-API-CLIENT: zot-ui``) may instead carry a session cookie.  ``None`` means anonymous.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import Any, Protocol

from zotpy.auth.identity import Identity
from zotpy.auth.policy import AccessPolicy
from zotpy.auth.sessions import COOKIE, Sessions
from zotpy.errors import Unauthenticated

UI_HEADER = "HTTP_X_ZOT_API_CLIENT"
UI_CLIENT = "zot-ui"
EMPTY_BASIC = "Og=="
MAX_HEADER = 8192


class PasswordBackend(Protocol):
    """Checks a username and password: the user's groups on success, None when they do not match.

    Raises ``AuthUnavailable`` when the backend cannot answer (a directory that is down).
    """

    def check(self, username: str, password: str) -> frozenset[str] | None: ...


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Identity: ...
    def challenge(self, scope: str | None = None) -> str: ...


def is_ui(environ: Mapping[str, Any]) -> bool:
    return str(environ.get(UI_HEADER, "")).strip().lower() == UI_CLIENT


def session_cookie(environ: Mapping[str, Any]) -> str | None:
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return None
    try:
        jar = SimpleCookie(str(raw))
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def parse_basic(value: str) -> tuple[str, str] | None:
    """(username, password) of a Basic credential; None for the empty one; Unauthenticated if malformed."""
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        raise Unauthenticated("unsupported authorization scheme; use Basic")
    encoded = encoded.strip()
    if encoded == EMPTY_BASIC:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise Unauthenticated("malformed Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username or not password:
        raise Unauthenticated("malformed Basic credentials")
    return username, password


class Authenticator:
    """The configured backends in zot's order."""

    def __init__(self, policy: AccessPolicy, backends: Sequence[tuple[str, PasswordBackend]] = (),
                 sessions: Sessions | None = None, bearer: TokenVerifier | None = None) -> None:
        self.policy = policy
        self.backends = tuple(backends)
        self.sessions = sessions
        self.bearer = bearer

    @property
    def enabled(self) -> bool:
        return bool(self.backends) or self.bearer is not None

    def presented(self, environ: Mapping[str, Any]) -> bool:
        """True when the request carries credentials (a header other than empty Basic, or a UI session)."""
        header = str(environ.get("HTTP_AUTHORIZATION", "")).strip()
        if header and header.partition(" ")[2].strip() != EMPTY_BASIC:
            return True
        return is_ui(environ) and session_cookie(environ) is not None

    def authenticate(self, environ: Mapping[str, Any]) -> Identity | None:
        header = str(environ.get("HTTP_AUTHORIZATION", "")).strip()
        if len(header) > MAX_HEADER:
            raise Unauthenticated("authorization header too long")
        # Servers join repeated headers with commas; no Basic or Bearer credential contains one.
        if "," in header:
            raise Unauthenticated("more than one Authorization header")
        if self.bearer is not None:
            return self._bearer(header)
        if header and self.backends:
            credentials = parse_basic(header)
            if credentials is not None:
                return self.check_password(*credentials)
        if self.sessions is not None and is_ui(environ):
            cookie = session_cookie(environ)
            if cookie:
                return self.sessions.resolve(cookie)
        return None

    def _bearer(self, header: str) -> Identity | None:
        if not header:
            return None
        assert self.bearer is not None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("bearer token required")
        return self.bearer.verify(token.strip())

    def check_password(self, username: str, password: str) -> Identity:
        """Try each backend; the first that knows the user and password vouches for them."""
        for name, backend in self.backends:
            groups = backend.check(username, password)
            if groups is not None:
                return Identity(username, groups | self.policy.groups_of(username), name)
        raise Unauthenticated("invalid username or password")
