"""Web UI sessions: a ``session`` cookie carrying a signed session id, the session kept in the database.

Keeping sessions server-side lets ``/zot/auth/logout`` end one for good and lets every worker see
it.  The signing key is ``hashKey`` of ``http.auth.sessionKeysFile`` or, without that file, a random
key generated once and kept in the database (zot makes a new one per start, losing sessions).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from zotpy.auth.identity import Identity
from zotpy.errors import ConfigError
from zotpy.meta.authmodels import AuthTables

COOKIE = "session"
MAX_AGE = 2 * 3600
_KEY_SETTING = "session_hash_key"


def load_keys_file(path: str) -> bytes:
    """``hashKey`` of a zot session keys file (JSON ``{"hashKey": ..., "encryptKey": ...}``)."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"http.auth.sessionKeysFile: cannot read {path}: {exc}") from None
    key = doc.get("hashKey") if isinstance(doc, dict) else None
    if not isinstance(key, str) or len(key) < 16:
        raise ConfigError("http.auth.sessionKeysFile: hashKey must be a string of at least 16 characters")
    return key.encode()


class Sessions:
    """Create, resolve and end web sessions."""

    def __init__(self, tables: AuthTables, key: bytes | None = None) -> None:
        self.tables = tables
        self.key = key if key is not None else self._stored_key()

    def _stored_key(self) -> bytes:
        setting = self.tables.setting
        setting.insert(key=_KEY_SETTING, value=secrets.token_hex(32)).on_conflict_ignore().execute()
        return str(setting.get(setting.key == _KEY_SETTING).value).encode()

    def _sign(self, session_id: str) -> str:
        return hmac.new(self.key, session_id.encode(), hashlib.sha256).hexdigest()

    def create(self, identity: Identity) -> str:
        """A new session for ``identity``; returns the cookie value."""
        session_id = secrets.token_hex(32)
        self.tables.session.insert(id=session_id, username=identity.username,
                                   groups=json.dumps(sorted(identity.groups)), method=identity.method,
                                   expires_at=time.time() + MAX_AGE).execute()
        return f"{session_id}.{self._sign(session_id)}"

    def _id(self, cookie: str) -> str | None:
        session_id, _, signature = cookie.partition(".")
        if not session_id or not hmac.compare_digest(signature.encode(), self._sign(session_id).encode()):
            return None
        return session_id

    def resolve(self, cookie: str) -> Identity | None:
        session_id = self._id(cookie)
        if session_id is None:
            return None
        table = self.tables.session
        row: Any = table.get_or_none(table.id == session_id)
        if row is None:
            return None
        if row.expires_at <= time.time():
            table.delete().where(table.id == session_id).execute()
            return None
        return Identity(row.username, frozenset(json.loads(row.groups or "[]")), "session")

    def end(self, cookie: str) -> None:
        session_id = self._id(cookie)
        if session_id is not None:
            self.tables.session.delete().where(self.tables.session.id == session_id).execute()
