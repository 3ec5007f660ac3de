"""The request guard: authentication and access control in front of every ``/v2/`` route.

Before routing it works out who calls and what the request reaches, and refuses with 401 (anonymous,
with the challenge that makes clients log in) or 403 DENIED (authenticated) before any handler can
tell whether the repository exists.  It also binds upload sessions to the user who opened them and
hands the read check to the routes that list or mount (``zotpy.may_read`` in the WSGI environ).
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections.abc import Callable

from flask import Flask, Response, g, request

from zotpy.auth import routemap as rm
from zotpy.auth.authenticate import Authenticator, TokenVerifier, is_ui, session_cookie
from zotpy.auth.identity import Identity
from zotpy.auth.policy import CREATE, DELETE, READ, TOKEN_ACTIONS, UPDATE, AccessPolicy
from zotpy.auth.sessions import COOKIE, MAX_AGE
from zotpy.auth.throttle import FailureThrottle
from zotpy.errors import BlobUploadUnknown, Denied, TooManyRequests, Unauthenticated, Unauthorized
from zotpy.meta.authmodels import AuthTables
from zotpy.oci.digest import looks_like_digest
from zotpy.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_REALM = "Authorization Required"
IDENTITY_KEY = "zotpy.identity"
USER_KEY = "zotpy.user"
MAY_READ_KEY = "zotpy.may_read"
UPLOAD_OWNER_DAYS = 7
"""Owners of upload sessions older than this are forgotten (the session then answers 404 to everyone)."""

PushedByRecorder = Callable[[str, str, str], None]
"""Records who pushed a manifest: (repository, digest, username)."""


class Guard:
    """``before_request`` / ``after_request`` handlers enforcing one configuration."""

    def __init__(self, authenticator: Authenticator, policy: AccessPolicy, throttle: FailureThrottle,
                 tables: AuthTables, registry: Registry, *, realm: str = "", fail_delay: float = 0.0,
                 secure_cookie: bool = False, record_pusher: PushedByRecorder | None = None) -> None:
        self.authenticator = authenticator
        self.policy = policy
        self.throttle = throttle
        self.tables = tables
        self.registry = registry
        self.realm = realm or DEFAULT_REALM
        self.fail_delay = fail_delay
        self.secure_cookie = secure_cookie
        self.record_pusher = record_pusher

    def init_app(self, app: Flask) -> None:
        app.before_request(self.before)
        app.after_request(self.after)

    # -- identity ---------------------------------------------------------------------------

    @staticmethod
    def current_identity() -> Identity | None:
        """The caller of the request being served (None: anonymous)."""
        return request.environ.get(IDENTITY_KEY)

    def identify(self) -> Identity | None:
        """Authenticate the current request once (also for ``/zot/auth`` routes); 401 on bad credentials."""
        environ = request.environ
        if "zotpy.identified" in environ:
            return environ.get(IDENTITY_KEY)
        client = self.throttle.client(environ)
        presented = self.authenticator.presented(environ)
        if presented:
            wait = self.throttle.retry_after(client)
            if wait > 0:
                raise TooManyRequests("too many failed authentication attempts",
                                      headers={"Retry-After": str(math.ceil(wait))})
        try:
            identity = self.authenticator.authenticate(environ)
        except Unauthenticated as exc:
            self.throttle.failed(client)
            log.info("authentication failed", extra={"client": client, "reason": exc.message})
            self._delay()
            raise Unauthenticated(exc.message, headers=self._challenge(None)) from None
        if identity is None and is_ui(environ) and session_cookie(environ):
            environ["zotpy.clear_session"] = True  # an ended or forged session: drop the cookie
        environ["zotpy.identified"] = True
        environ[IDENTITY_KEY] = identity
        if identity is not None:
            environ[USER_KEY] = identity.username
        return identity

    # -- before ------------------------------------------------------------------------------

    def before(self) -> None:
        target = rm.classify(request.path)
        if target is None or request.method == "OPTIONS":
            return
        g.zotpy_target = target
        identity = self.identify()
        if target.kind == rm.MGMT:
            return  # the UI reads it before logging in, as in zot
        if identity is None and (self._login_required() or self._ping_needs_login(target)):
            action = rm.base_action(target, request.method) if target.repo is not None else None
            raise self._unauthorized(target, action)
        if target.repo is None:
            if target.kind == rm.CATALOG:
                request.environ[MAY_READ_KEY] = self._reader(identity)
            return
        for action in self._actions(target):
            if not self.policy.can(identity, action, target.repo):
                self._deny(identity, target, action)
        if target.kind == rm.UPLOAD_START:
            request.environ[MAY_READ_KEY] = self._reader(identity)
        elif target.kind == rm.UPLOAD:
            self._check_upload_owner(identity, target)

    def _login_required(self) -> bool:
        if self.authenticator.bearer is not None:
            return True
        return not self.policy.anonymous_may_act()

    def can_read(self, identity: Identity | None, repo: str) -> bool:
        return self.policy.can(identity, READ, repo)

    def can_delete(self, identity: Identity | None, repo: str) -> bool:
        return self.policy.can(identity, DELETE, repo)

    def _ping_needs_login(self, target: rm.Target) -> bool:
        """``/v2/`` asks anonymous callers to log in whenever logging in is possible.

        Clients (podman, skopeo, docker) learn from this ping whether to send credentials at all: a 200
        would make ``podman login`` "succeed" without checking the password and pushes go out anonymous.
        Anonymous pulls still work, as clients without credentials carry on after the 401.  The web UI
        gets 200 when anonymous callers may read something, so it can offer anonymous browsing.
        """
        if target.kind != rm.BASE or not self.authenticator.enabled:
            return False
        return not (is_ui(request.environ) and self.policy.anonymous_may_act())

    def _reader(self, identity: Identity | None) -> Callable[[str], bool]:
        policy = self.policy
        return lambda name: policy.can(identity, READ, name)

    def _actions(self, target: rm.Target) -> set[str]:
        action = rm.base_action(target, request.method)
        if target.kind != rm.MANIFEST or request.method != "PUT":
            return {action}
        assert target.repo is not None and target.reference is not None
        if looks_like_digest(target.reference):
            tags = request.args.getlist("tag")
            actions = {CREATE}
        else:
            tags, actions = [target.reference], set()
        for tag in tags:
            actions.add(UPDATE if self.registry.tag_exists(target.repo, tag) else CREATE)
        return actions

    def _check_upload_owner(self, identity: Identity | None, target: rm.Target) -> None:
        table = self.tables.upload_owner
        row = table.get_or_none((table.repo == target.repo) & (table.session == target.session))
        caller = identity.username if identity is not None else ""
        if row is None or not hmac.compare_digest(str(row.username).encode(), caller.encode()):
            raise BlobUploadUnknown(detail={"session": (target.session or "")[:64]})

    # -- refusals ----------------------------------------------------------------------------

    def _delay(self) -> None:
        if self.fail_delay > 0:
            time.sleep(self.fail_delay)  # cooperative under gevent

    def _challenge(self, target: rm.Target | None, action: str | None = None) -> dict[str, str]:
        bearer: TokenVerifier | None = self.authenticator.bearer
        if bearer is not None:
            scope = None
            if target is not None and target.repo is not None and action is not None:
                scope = f"repository:{target.repo}:{TOKEN_ACTIONS.get(action, action)}"
            return {"WWW-Authenticate": bearer.challenge(scope)}
        if is_ui(request.environ):
            return {}  # no browser login dialog for the web UI, as in zot
        realm = self.realm.replace("\\", "\\\\").replace('"', '\\"')
        return {"WWW-Authenticate": f'Basic realm="{realm}"'}

    def challenge_headers(self) -> dict[str, str]:
        """The challenge for a route outside ``/v2`` (no repository scope)."""
        return self._challenge(None)

    def _unauthorized(self, target: rm.Target, action: str | None) -> Unauthorized:
        return Unauthorized(headers=self._challenge(target, action))

    def _deny(self, identity: Identity | None, target: rm.Target, action: str) -> None:
        if identity is None:
            raise self._unauthorized(target, action)
        self._delay()
        if identity.token_access is not None:
            # A token without the grant: ask for a better one, as registries do for bearer clients.
            raise Unauthorized("the token does not grant this access",
                               headers=self._challenge(target, action))
        raise Denied()

    # -- after -------------------------------------------------------------------------------

    def after(self, response: Response) -> Response:
        target: rm.Target | None = g.get("zotpy_target")
        environ = request.environ
        identity = environ.get(IDENTITY_KEY)
        if target is not None and target.repo is not None:
            try:
                self._track(target, identity, response)
            except Exception:  # the change is made; keep the answer, log the bookkeeping failure
                log.exception("auth bookkeeping failed", extra={"repo": target.repo})
        sessions = self.authenticator.sessions
        if sessions is not None and identity is not None and identity.method != "session" \
                and is_ui(environ) and response.status_code < 400:
            response.set_cookie(COOKIE, sessions.create(identity), max_age=MAX_AGE, httponly=True,
                                secure=self.secure_cookie, samesite="Lax", path="/")
        elif environ.get("zotpy.clear_session"):
            response.delete_cookie(COOKIE, path="/")
        return response

    def _track(self, target: rm.Target, identity: Identity | None, response: Response) -> None:
        status, method = response.status_code, request.method
        owner = identity.username if identity is not None else ""
        if target.kind == rm.UPLOAD_START and status == 202:
            session = response.headers.get("Docker-Upload-UUID")
            if session:
                table, now = self.tables.upload_owner, time.time()
                table.insert(repo=target.repo, session=session, username=owner, created_at=now
                             ).on_conflict(conflict_target=[table.repo, table.session],
                                           update={table.username: owner}).execute()
                table.delete().where(table.created_at < now - UPLOAD_OWNER_DAYS * 86400).execute()
        elif target.kind == rm.UPLOAD and ((method == "PUT" and status == 201)
                                            or (method == "DELETE" and status == 204)):
            table = self.tables.upload_owner
            table.delete().where((table.repo == target.repo) & (table.session == target.session)).execute()
        elif target.kind == rm.MANIFEST and method == "PUT" and status == 201 and owner:
            digest = response.headers.get("Docker-Content-Digest")
            if digest and self.record_pusher is not None and target.repo is not None:
                self.record_pusher(target.repo, digest, owner)

