"""API keys (``http.auth.apikey``): ``zak_`` secrets used as the password in Basic auth.

Only the SHA-256 of a key's secret part is stored, so the database never holds a usable key; a key
is shown once, when it is made.  A key acts as its owner, with the groups the owner had then.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from zotpy.meta.authmodels import AuthTables

PREFIX = "zak_"
LAST_USED_RESOLUTION = 60.0
"""Seconds between writes of a key's ``lastUsed`` (a push uses a key hundreds of times)."""


def rfc3339(stamp: float | None) -> str:
    """zot's JSON time form; the zero time stands for "never"."""
    if stamp is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(secret_part: str) -> str:
    return hashlib.sha256(secret_part.encode()).hexdigest()


class ApiKeys:
    """The API keys of every user, in the database; also a password backend (``check``)."""


    def __init__(self, tables: AuthTables) -> None:
        self.tables = tables

    def create(self, username: str, groups: frozenset[str], label: str, scopes: list[str],
               expires_at: float | None, user_agent: str) -> dict[str, Any]:
        """Make a key; the returned details carry the secret (``apiKey``), shown only this once."""
        secret_part = uuid.uuid4().hex
        key_id = str(uuid.uuid4())
        now = time.time()
        self.tables.api_key.insert(
            uuid=key_id, username=username, key_hash=_digest(secret_part), label=label,
            scopes=json.dumps(scopes), groups=json.dumps(sorted(groups)), created_at=now,
            expires_at=expires_at, creator_ua=user_agent[:512], generated_by="manual").execute()
        row = self.tables.api_key.get(self.tables.api_key.uuid == key_id)
        return {**self._details(row), "apiKey": PREFIX + secret_part}

    def list(self, username: str) -> list[dict[str, Any]]:
        table = self.tables.api_key
        rows = table.select().where(table.username == username).order_by(table.created_at)
        return [self._details(row) for row in rows]

    def delete(self, username: str, key_id: str) -> bool:
        table = self.tables.api_key
        return bool(table.delete().where((table.uuid == key_id) & (table.username == username)).execute())

    def check(self, username: str, password: str) -> frozenset[str] | None:
        """The owner's groups when ``password`` is a live key of ``username``; None otherwise."""
        if not password.startswith(PREFIX):
            return None
        table = self.tables.api_key
        wanted = _digest(password[len(PREFIX):])
        row = table.get_or_none(table.key_hash == wanted)
        # The row was found by the hash of a secret; comparing names in constant time costs nothing.
        if row is None or not hmac.compare_digest(row.username.encode(), username.encode()):
            return None
        now = time.time()
        if row.expires_at is not None and row.expires_at <= now:
            return None
        if row.last_used is None or now - row.last_used >= LAST_USED_RESOLUTION:
            table.update(last_used=now).where(table.uuid == row.uuid).execute()
        return frozenset(json.loads(row.groups or "[]"))

    @staticmethod
    def _details(row: Any) -> dict[str, Any]:
        expired = row.expires_at is not None and row.expires_at <= time.time()
        return {
            "uuid": row.uuid, "label": row.label, "scopes": json.loads(row.scopes or "[]"),
            "createdAt": rfc3339(row.created_at), "expirationDate": rfc3339(row.expires_at),
            "isExpired": expired, "creatorUa": row.creator_ua, "generatedBy": row.generated_by,
            "lastUsed": rfc3339(row.last_used), "createdBy": row.username,
        }
