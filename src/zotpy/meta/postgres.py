"""PostgreSQL for the storage index and metadata: ``storage.cacheDriver: {"name": "postgresql", ...}``.

Keys: ``url`` (``postgresql://user@host:port/db``, libpq parameters allowed in the query),
``passwordFile`` (read once; otherwise the URL's password or libpq's own ``PGPASSWORD`` /
``~/.pgpass``), ``maxConnections`` per process (default 20) and ``poolTimeout`` seconds to wait for a
free one.  Connections are pooled per process, one per greenlet in use, returned at request end
(``close_if_open``).  Under gevent psycopg2 is given a wait callback, so a query waiting on the
server yields to other greenlets instead of blocking the worker.

Catalog and tag pages are ordered by the database: the database must collate bytewise (``C`` or
``C.UTF-8``, e.g. ``createdb --locale=C.UTF-8``), as SQLite does, or pages would follow a locale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from playhouse.pool import PooledPostgresqlDatabase

from zotpy.errors import ConfigError

__all__ = ["NAME", "CooperativePostgresDatabase", "connector", "open_postgres"]

NAME = "postgresql"
KEY_PATH = "storage.cacheDriver"
DEFAULT_MAX_CONNECTIONS = 20
DEFAULT_POOL_TIMEOUT = 30.0
BYTEWISE_COLLATIONS = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8"})
_KNOWN = frozenset({"name", "url", "passwordfile", "maxconnections", "pooltimeout"})


def _cooperate_with_gevent() -> None:
    """Make psycopg2 wait through ``select`` when gevent has patched it (a cooperative wait)."""
    try:
        from gevent import monkey
    except ImportError:
        return
    if monkey.is_module_patched("select"):
        import psycopg2.extensions
        import psycopg2.extras

        if psycopg2.extensions.get_wait_callback() is None:
            psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)


class CooperativePostgresDatabase(PooledPostgresqlDatabase):
    """A pooled PostgreSQL database that checks its collation once and yields to gevent while waiting."""

    _checked = False

    def _connect(self) -> Any:
        _cooperate_with_gevent()
        conn = super()._connect()
        if not self._checked:
            with conn.cursor() as cursor:
                cursor.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()")
                row = cursor.fetchone()
            conn.rollback()
            collation = row[0] if row else ""
            if collation not in BYTEWISE_COLLATIONS:
                conn.close()
                raise ConfigError(
                    f"{KEY_PATH}.url: database collation {collation!r} is not bytewise; create the "
                    "database with --locale=C.UTF-8 (catalog and tag pages must follow code points)")
            self._checked = True
        return conn


def _parse(settings: Mapping[str, Any]) -> tuple[str, dict[str, Any], Mapping[str, Any]]:
    """The database name, the psycopg2 connection arguments and the lower-cased settings."""
    settings = {str(key).lower(): value for key, value in settings.items()}
    unknown = sorted(set(settings) - _KNOWN)
    if unknown:
        raise ConfigError(f"{KEY_PATH}.{unknown[0]}: unknown key for the postgresql cache driver")
    url = settings.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"{KEY_PATH}.url: required, a postgresql://user@host:port/database URL")
    database = urlsplit(url).path.lstrip("/")
    if not database:
        raise ConfigError(f"{KEY_PATH}.url: names no database")
    kwargs: dict[str, Any] = {"dsn": url}
    password_file = settings.get("passwordfile")
    if password_file:
        try:
            with open(password_file, encoding="utf-8") as f:
                kwargs["password"] = f.read().strip()
        except OSError as exc:
            raise ConfigError(f"{KEY_PATH}.passwordFile: cannot read {password_file!r}: "
                              f"{exc.strerror}") from None
    return database, kwargs, settings


def open_postgres(settings: Mapping[str, Any]) -> CooperativePostgresDatabase:
    """A (lazily connecting) pooled database for a ``cacheDriver`` mapping naming ``postgresql``.

    Keys are case-insensitive, as everywhere in the config.
    """
    database, kwargs, settings = _parse(settings)
    max_connections = _number(settings, "maxConnections", DEFAULT_MAX_CONNECTIONS)
    timeout = _number(settings, "poolTimeout", DEFAULT_POOL_TIMEOUT)
    return CooperativePostgresDatabase(database, max_connections=int(max_connections), timeout=timeout,
                                       stale_timeout=300, autoconnect=True, **kwargs)


def connector(settings: Mapping[str, Any]) -> Callable[[], Any]:
    """A function opening a new, autocommitting psycopg2 connection (outside the pool) per call."""
    database, kwargs, _ = _parse(settings)

    def connect() -> Any:
        import psycopg2

        _cooperate_with_gevent()
        conn = psycopg2.connect(dbname=database, **kwargs)
        conn.autocommit = True
        return conn

    return connect


def _number(settings: Mapping[str, Any], key: str, default: float) -> float:
    value = settings.get(key.lower(), default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{KEY_PATH}.{key}: expected a positive number")
    return float(value)
