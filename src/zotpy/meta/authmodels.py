"""Tables of the authentication layer: API keys, web sessions, upload owners and small settings.

They live in the default store's database (beside the metadata tables) and, unlike the metadata,
are not derived from storage: nothing rebuilds them.
"""

from __future__ import annotations

import peewee

from zotpy.meta.db import bound_model, migrate

__all__ = ["COMPONENT", "SCHEMA_VERSION", "ApiKey", "AuthFailure", "AuthSetting", "AuthTables", "UploadOwner",
           "WebSession"]

COMPONENT = "auth"
SCHEMA_VERSION = 1


class ApiKey(peewee.Model):
    """An API key: only the SHA-256 of its secret part is kept."""

    uuid = peewee.TextField(primary_key=True)
    username = peewee.TextField(index=True)
    key_hash = peewee.TextField(unique=True)
    label = peewee.TextField(default="")
    scopes = peewee.TextField(default="[]")  # JSON list; informational, as in zot
    groups = peewee.TextField(default="[]")  # JSON list: the owner's groups when the key was made
    created_at = peewee.DoubleField()
    expires_at = peewee.DoubleField(null=True)
    last_used = peewee.DoubleField(null=True)
    creator_ua = peewee.TextField(default="")
    generated_by = peewee.TextField(default="manual")

    class Meta:
        table_name = "auth_api_key"


class WebSession(peewee.Model):
    """A logged-in web UI session; the cookie carries its signed id."""

    id = peewee.TextField(primary_key=True)
    username = peewee.TextField(index=True)
    groups = peewee.TextField(default="[]")
    method = peewee.TextField(default="")
    expires_at = peewee.DoubleField()

    class Meta:
        table_name = "auth_session"


class UploadOwner(peewee.Model):
    """Who opened an upload session (empty for anonymous), so nobody else can use it."""

    repo = peewee.TextField()
    session = peewee.TextField()
    username = peewee.TextField()
    created_at = peewee.DoubleField(index=True)

    class Meta:
        table_name = "auth_upload_owner"
        primary_key = peewee.CompositeKey("repo", "session")


class AuthFailure(peewee.Model):
    """A failed authentication from a client address; recent ones throttle that client in every worker."""

    id = peewee.AutoField()
    client = peewee.TextField()
    at = peewee.DoubleField()

    class Meta:
        table_name = "auth_failure"
        indexes = ((("client", "at"), False),)


class AuthSetting(peewee.Model):
    """Small named values (the generated session signing key)."""

    key = peewee.TextField(primary_key=True)
    value = peewee.TextField()

    class Meta:
        table_name = "auth_setting"


class AuthTables:
    """The authentication models bound to one database."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.api_key = bound_model(ApiKey, db)
        self.session = bound_model(WebSession, db)
        self.upload_owner = bound_model(UploadOwner, db)
        self.setting = bound_model(AuthSetting, db)
        self.failure = bound_model(AuthFailure, db)

    def all(self) -> list[type[peewee.Model]]:
        return [self.api_key, self.session, self.upload_owner, self.setting, self.failure]

    def ensure_schema(self) -> None:
        """Create or migrate the tables (one read of the recorded version when current)."""
        tables = self.all()
        migrate(self.db, COMPONENT, SCHEMA_VERSION, {1: lambda db: db.create_tables(tables, safe=True)})
