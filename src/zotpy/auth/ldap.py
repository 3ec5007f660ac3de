"""LDAP authentication (zot's ``http.auth.ldap``): find the user with a service bind, then bind as them.

ldap3 runs over the worker's gevent-patched sockets, so a slow directory blocks only the greenlet that
asked; every socket has a connect and a receive timeout, and the number of open connections is bounded,
so a directory that hangs costs a few sockets and a 503, never a stalled worker.  An unknown user still
costs a (decoy) bind, so it takes as long as a wrong password and does not reveal which names exist.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ldap3 import ANONYMOUS, LEVEL, NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from zotpy.errors import AuthUnavailable, ConfigError

log = logging.getLogger(__name__)

CONFIG_KEY = "http.auth.ldap"
CONNECT_TIMEOUT = 3.0  # seconds to open a connection (TCP and TLS handshake)
RECEIVE_TIMEOUT = 5  # seconds to wait for any one answer (whole seconds: ldap3 packs it as an integer)
POOL_SIZE = 4  # open connections per kind (service searches, user binds) per worker
SIZE_LIMIT_EXCEEDED = 4  # more than one entry matched: refused like none
# Result codes that mean "the directory cannot answer now" rather than "no such user / wrong password".
UNAVAILABLE_RESULTS = frozenset({3, 11, 51, 52, 80})  # timeLimit, adminLimit, busy, unavailable, other


@dataclass(frozen=True)
class LDAPSettings:
    """The validated ``http.auth.ldap`` mapping, with zot's defaults applied."""

    address: str
    port: int
    use_ssl: bool
    start_tls: bool
    skip_verify: bool
    ca_cert: str | None
    base_dn: str
    user_attribute: str
    group_attribute: str | None
    user_filter: str
    subtree: bool
    credentials_file: str | None

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> LDAPSettings:
        insecure = bool(settings.get("insecure", False))
        user_filter = (settings.get("userFilter") or "").strip()
        if user_filter and not user_filter.startswith("("):
            user_filter = f"({user_filter})"
        return cls(
            address=settings["address"],
            port=int(settings.get("port") or (389 if insecure else 636)),
            use_ssl=not insecure,
            start_tls=insecure and bool(settings.get("startTLS", False)),
            skip_verify=bool(settings.get("skipVerify", False)),
            ca_cert=settings.get("caCert") or None,
            base_dn=settings["baseDN"],
            user_attribute=settings["userAttribute"],
            group_attribute=settings.get("userGroupAttribute") or None,
            user_filter=user_filter,
            subtree=bool(settings.get("subtreeSearch", False)),
            credentials_file=settings.get("credentialsFile") or None,
        )


def _read_credentials(path: str) -> tuple[str, str]:
    """``bindDN`` and ``bindPassword`` from zot's JSON credentials file."""
    key = f"{CONFIG_KEY}.credentialsFile"
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{key}: {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{key}: {path} must hold a JSON object with bindDN and bindPassword")
    folded = {str(name).lower(): value for name, value in data.items()}
    bind_dn, bind_password = folded.get("binddn"), folded.get("bindpassword")
    if not isinstance(bind_dn, str) or not bind_dn or not isinstance(bind_password, str) or not bind_password:
        raise ConfigError(f"{key}: {path} must set both bindDN and bindPassword (non-empty strings)")
    return bind_dn, bind_password


class _ServiceCredentials:
    """The service account's DN and password, re-read when the credentials file changes (as zot does)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stamp = self._stat()
        self._value = _read_credentials(path) if path else None

    def _stat(self) -> tuple[int, int, int] | None:
        if not self.path:
            return None
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    @property
    def value(self) -> tuple[str, str] | None:
        """(bindDN, bindPassword); None for an anonymous bind."""
        return self._value

    def refresh(self) -> bool:
        """Re-read the file if it changed (one ``stat``); True when new credentials were loaded."""
        stamp = self._stat()
        if self.path is None or stamp is None or stamp == self._stamp:
            return False
        try:
            value = _read_credentials(self.path)
        except ConfigError as exc:  # mid-rewrite or broken: keep binding with the last good ones
            log.error("LDAP credentials file unusable, keeping the previous credentials: %s", exc)
            return False
        self._stamp = stamp
        changed, self._value = value != self._value, value
        if changed:
            log.info("LDAP credentials file reloaded", extra={"path": self.path})
        return changed


class _Pool:
    """At most ``size`` connections of one kind, each used by one caller at a time; idle ones are kept."""

    def __init__(self, opener: Callable[[], Connection], size: int, wait: float) -> None:
        self._opener = opener
        self._idle: list[Connection] = []
        self._slots = threading.BoundedSemaphore(size)  # gevent's own semaphore once monkey-patched
        self._wait = wait
        self._generation = 0  # bumped by close(): connections taken before it are not kept

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        if not self._slots.acquire(timeout=self._wait):
            raise AuthUnavailable("the LDAP directory is too slow to answer")
        try:
            reused, generation = bool(self._idle), self._generation
            conn = self._idle.pop() if reused else self._opener()
            try:
                yield conn
            except (LDAPException, OSError) as exc:
                _close(conn)
                if reused:  # the directory may have restarted: its other idle connections are dead too
                    self.close()
                    if not isinstance(exc, TimeoutError):  # a hanging directory is not worth a retry
                        raise _Stale(str(exc)) from exc
                raise
            except BaseException:
                _close(conn)
                raise
            if generation == self._generation:
                self._idle.append(conn)
            else:
                _close(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        self._generation += 1
        while self._idle:
            _close(self._idle.pop())


def _close(conn: Connection) -> None:
    try:
        conn.unbind()
    except (LDAPException, OSError):
        pass  # already broken; it is being dropped anyway


class LDAPBackend:
    """Checks a username and password against an LDAP directory and reads the user's groups."""

    def __init__(self, settings: Mapping[str, Any], *, connect_timeout: float = CONNECT_TIMEOUT,
                 receive_timeout: int = RECEIVE_TIMEOUT, pool_size: int = POOL_SIZE) -> None:
        self.settings = LDAPSettings.from_mapping(settings)
        self._credentials = _ServiceCredentials(self.settings.credentials_file)
        self._receive_timeout = receive_timeout
        self._tls = self._tls_settings() if self.settings.use_ssl or self.settings.start_tls else None
        self._connect_timeout = connect_timeout
        wait = connect_timeout + receive_timeout
        self._searchers = _Pool(self._open_service_connection, pool_size, wait)
        self._binders = _Pool(self._open_connection, pool_size, wait)
        # An unknown user is answered with a bind to this DN, which exists nowhere (see the module doc).
        decoy = escape_rdn(f"zotpy-no-such-user-{uuid.uuid4().hex}")
        self._decoy_dn = f"{self.settings.user_attribute}={decoy},{self.settings.base_dn}"

    def _tls_settings(self) -> Tls:
        ca_cert = self.settings.ca_cert
        if ca_cert is not None and not os.access(ca_cert, os.R_OK):
            raise ConfigError(f"{CONFIG_KEY}.caCert: cannot read {ca_cert}")
        try:
            return Tls(validate=ssl.CERT_NONE if self.settings.skip_verify else ssl.CERT_REQUIRED,
                       ca_certs_file=ca_cert)
        except LDAPException as exc:
            raise ConfigError(f"{CONFIG_KEY}.caCert: {exc}") from None

    def check(self, username: str, password: str) -> frozenset[str] | None:
        """The user's groups when the password is right; None for an unknown user or a wrong password.

        Raises ``AuthUnavailable`` when the directory cannot be reached or does not answer in time.
        """
        if not username or not password:
            return None  # an empty password would be an unauthenticated bind, which always "succeeds"
        try:
            try:
                return self._authenticate(username, password)
            except _Stale:  # the directory restarted or dropped idle connections: all of them are suspect
                self.close()
                return self._authenticate(username, password)  # once more, on fresh connections
        except (LDAPException, OSError) as exc:
            log.warning("LDAP directory %s:%s unavailable: %s", self.settings.address, self.settings.port,
                        exc)
            raise AuthUnavailable("the LDAP directory is unavailable") from None

    def _authenticate(self, username: str, password: str) -> frozenset[str] | None:
        entry = self._find_user(username)
        dn = entry["dn"] if entry is not None else self._decoy_dn
        if not self._bind_as(dn, password) or entry is None:
            return None
        return self._groups(entry)

    def close(self) -> None:
        """Close the idle connections."""
        self._searchers.close()
        self._binders.close()

    def _user_filter(self, username: str) -> str:
        match = f"({self.settings.user_attribute}={escape_filter_chars(username)})"
        return f"(&{match}{self.settings.user_filter})" if self.settings.user_filter else match

    def _find_user(self, username: str) -> dict[str, Any] | None:
        """The one entry matching the username; None when there are none or several."""
        attributes = [self.settings.group_attribute] if self.settings.group_attribute else []
        if self._credentials.refresh():
            self._searchers.close()  # bound with the old service account
        with self._searchers.connection() as conn:
            conn.search(
                self.settings.base_dn, self._user_filter(username),
                search_scope=SUBTREE if self.settings.subtree else LEVEL,
                attributes=attributes, size_limit=2, time_limit=self._receive_timeout,
            )
            result = conn.result or {}
            entries = [item for item in conn.response or [] if item.get("type") == "searchResEntry"]
        code = result.get("result", 0)
        if code in UNAVAILABLE_RESULTS:
            raise _Unavailable(f"search answered {result.get('description')}")
        if code not in (0, SIZE_LIMIT_EXCEEDED):  # e.g. noSuchObject: baseDN is wrong
            log.warning("LDAP user search under %s failed: %s", self.settings.base_dn,
                        result.get("description"))
        return entries[0] if len(entries) == 1 else None

    def _bind_as(self, dn: str, password: str) -> bool:
        with self._binders.connection() as conn:
            ok = bool(conn.rebind(user=dn, password=password, authentication=SIMPLE, read_server_info=False))
            code = (conn.result or {}).get("result", 0)
        if not ok and code in UNAVAILABLE_RESULTS:
            raise _Unavailable(f"bind answered {(conn.result or {}).get('description')}")
        return ok

    def _groups(self, entry: Mapping[str, Any]) -> frozenset[str]:
        if not self.settings.group_attribute:
            return frozenset()
        values = (entry.get("attributes") or {}).get(self.settings.group_attribute) or []
        if isinstance(values, str):
            values = [values]
        return frozenset(str(value) for value in values)

    def _open_connection(self) -> Connection:
        """An anonymous connection, opened (and upgraded with StartTLS when configured)."""
        # A Server per connection: ldap3 marks a failed address unusable for a while on the Server object,
        # which would keep answering "unavailable" after the directory is back.
        server = Server(
            self.settings.address, port=self.settings.port, use_ssl=self.settings.use_ssl, tls=self._tls,
            get_info=NONE, connect_timeout=self._connect_timeout,
        )
        conn = Connection(server, authentication=ANONYMOUS, receive_timeout=self._receive_timeout,
                          raise_exceptions=False, read_only=True, auto_referrals=False)
        conn.open(read_server_info=False)
        if self.settings.start_tls and not conn.start_tls(read_server_info=False):
            _close(conn)
            raise _Unavailable(f"StartTLS refused: {(conn.result or {}).get('description')}")
        return conn

    def _open_service_connection(self) -> Connection:
        """A connection bound as the service account from ``credentialsFile`` (or anonymously)."""
        conn = self._open_connection()
        credentials = self._credentials.value
        if credentials is not None:
            bind_dn, bind_password = credentials
            ok = conn.rebind(user=bind_dn, password=bind_password, authentication=SIMPLE,
                             read_server_info=False)
            if not ok:
                description = (conn.result or {}).get("description")
                _close(conn)
                log.error("LDAP service bind as %s failed: %s", bind_dn, description)
                raise _Unavailable(f"service bind failed: {description}")
        return conn


class _Unavailable(LDAPException):
    """The directory answered, but with a result that means it cannot serve the request now."""


class _Stale(LDAPException):
    """A pooled connection failed: worth one more try on a fresh connection."""
