"""Authentication backends and per-repository access control (zot's ``http.auth`` and ``accessControl``).

:func:`init_app` is what ``zotpy.app`` calls: it builds the configured backends, the policy and the
request guard, and registers the ``/zot/auth`` routes.  Without authentication or access control in
the config it registers nothing, so an open registry pays nothing per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import peewee
from flask import Flask

from zotpy.auth.apikeys import ApiKeys
from zotpy.auth.authenticate import Authenticator, PasswordBackend, TokenVerifier
from zotpy.auth.guard import Guard
from zotpy.auth.htpasswd import HtpasswdBackend
from zotpy.auth.identity import Identity
from zotpy.auth.policy import AccessPolicy
from zotpy.auth.sessions import Sessions, load_keys_file
from zotpy.auth.throttle import FailureThrottle
from zotpy.config.model import Config
from zotpy.meta.authmodels import AuthTables
from zotpy.meta.store import MetaStore
from zotpy.registry import Registry

__all__ = ["AccessPolicy", "Guard", "Identity", "authentication_configured", "init_app"]


def authentication_configured(auth: Mapping[str, Any] | None) -> bool:
    """True when ``http.auth`` names a way to log in (``failDelay`` alone does not)."""
    auth = auth or {}
    return any(auth.get(method) for method in ("htpasswd", "ldap", "bearer", "apikey"))


def _backends(auth: Mapping[str, Any], tables: AuthTables) -> list[tuple[str, PasswordBackend]]:
    """Password backends in zot's order: htpasswd, LDAP, API keys."""
    backends: list[tuple[str, PasswordBackend]] = []
    if auth.get("htpasswd"):
        backends.append(("htpasswd", HtpasswdBackend(auth["htpasswd"]["path"])))
    if auth.get("ldap"):
        from zotpy.auth.ldap import LDAPBackend

        backends.append(("ldap", LDAPBackend(auth["ldap"])))
    if auth.get("apikey"):
        backends.append(("apikey", ApiKeys(tables)))
    return backends


def _pusher_recorder(meta: MetaStore) -> Any:
    def record(repo: str, digest: str, username: str) -> None:
        repo_id = meta.repo_id(repo, create=False)
        if repo_id is not None:
            table = meta.t.manifest
            chosen = (table.repo == repo_id) & (table.digest == digest)
            table.update(pushed_by=username).where(chosen).execute()

    return record


def init_app(app: Flask, config: Config, registry: Registry, db: peewee.Database,
             meta: MetaStore | None = None) -> Guard | None:
    """Enforce the config's authentication and access control on ``app``; None when it asks for neither."""
    from zotpy.auth.views import build_blueprint

    auth = config.http.auth or {}
    authenticating = authentication_configured(auth)
    if not authenticating and config.http.access_control is None:
        return None
    policy = AccessPolicy(config.http.access_control, authentication=authenticating)
    tables = AuthTables(db)
    tables.ensure_schema()
    bearer: TokenVerifier | None = None
    backends: list[tuple[str, PasswordBackend]] = []
    if auth.get("bearer"):
        from zotpy.auth.bearer import BearerVerifier

        bearer = BearerVerifier(auth["bearer"])  # replaces the password chain, as in zot
    else:
        backends = _backends(auth, tables)
    sessions: Sessions | None = None
    if backends:
        keys_file = auth.get("sessionKeysFile")
        sessions = Sessions(tables, load_keys_file(keys_file) if keys_file else None)
    authenticator = Authenticator(policy, backends, sessions, bearer)
    guard = Guard(authenticator, policy, FailureThrottle(tables), tables, registry, realm=config.http.realm,
                  fail_delay=float(auth.get("failDelay") or 0),
                  secure_cookie=bool(auth.get("secureSession")) or config.http.tls is not None,
                  record_pusher=_pusher_recorder(meta) if meta is not None else None)
    guard.init_app(app)
    apikeys = next((backend for _, backend in backends if isinstance(backend, ApiKeys)), None)
    app.register_blueprint(build_blueprint(guard, apikeys, sessions))
    return guard
