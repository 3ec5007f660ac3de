"""The storage index: where each blob's copies live and which repositories exist.

The image store uses it to place deduplicated blobs and to page through the catalog without walking
the disk.  It is derived from storage and merged with it (``add_all``) at startup; the store
receives it injected and never imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import peewee

from zotpy.meta.db import bound_model, connect_models

__all__ = ["StoreIndex"]

BATCH_ROWS = 400
"""Rows per INSERT when refilling the tables: 800 parameters, under SQLite's oldest limit of 999."""


class BlobLocation(peewee.Model):
    """One stored copy of a blob, as a store-relative path; the id orders copies oldest first."""

    id = peewee.AutoField()
    digest = peewee.TextField()
    path = peewee.TextField()

    class Meta:
        table_name = "store_blob_location"
        # Also the index for lookups by digest (its leading column).
        indexes = ((("digest", "path"), True),)


class Repository(peewee.Model):
    """A repository present in the store; the primary key's index serves ordered catalog pages."""

    name = peewee.TextField(primary_key=True)

    class Meta:
        table_name = "store_repository"


class StoreIndex:
    """Blob locations and repository names of one store, kept in the database ``db``."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self._locations = bound_model(BlobLocation, db)
        self._repositories = bound_model(Repository, db)
        connect_models(db, [self._locations, self._repositories])

    def locations(self, digest: str) -> list[str]:
        """Return the paths holding a copy of ``digest``, oldest first."""
        table = self._locations
        query = table.select(table.path).where(table.digest == digest).order_by(table.id)
        return list(query.scalars())

    def add_location(self, digest: str, path: str) -> None:
        """Record that ``path`` holds a copy of ``digest`` (no-op if already recorded)."""
        self._locations.insert(digest=digest, path=path).on_conflict_ignore().execute()

    def remove_location(self, digest: str, path: str) -> None:
        """Forget that ``path`` holds a copy of ``digest`` (no-op if not recorded)."""
        table = self._locations
        table.delete().where((table.digest == digest) & (table.path == path)).execute()

    def add_repository(self, name: str) -> None:
        """Record that repository ``name`` exists (no-op if already recorded)."""
        self._repositories.insert(name=name).on_conflict_ignore().execute()

    def remove_repository(self, name: str) -> None:
        """Forget repository ``name`` (no-op if not recorded)."""
        table = self._repositories
        table.delete().where(table.name == name).execute()

    def has_repository(self, name: str) -> bool:
        """Tell whether repository ``name`` is recorded."""
        table = self._repositories
        return table.select().where(table.name == name).exists()

    def list_repositories(self, last: str | None = None, limit: int | None = None) -> list[str]:
        """Return repository names in ascending code-point order, strictly after ``last``, at most ``limit``.

        SQLite compares TEXT as UTF-8 bytes, which orders like Python's ``sorted`` on ``str``.
        """
        if limit is not None and limit <= 0:
            return []
        table = self._repositories
        query = table.select(table.name).order_by(table.name)
        if last is not None:
            query = query.where(table.name > last)
        if limit is not None:
            query = query.limit(limit)
        return list(query.scalars())

    def add_all(self, repositories: Iterable[str], locations: Iterable[tuple[str, str]]) -> None:
        """Record ``repositories`` and ``(digest, path)`` ``locations``, keeping what is already recorded
        (and its order); what a startup walk found, merged with what other nodes write meanwhile."""
        rows = ({"name": name} for name in repositories)
        for batch in peewee.chunked(rows, BATCH_ROWS):
            self._repositories.insert_many(batch).on_conflict_ignore().execute()
        pairs = ({"digest": digest, "path": path} for digest, path in locations)
        for batch in peewee.chunked(pairs, BATCH_ROWS):
            self._locations.insert_many(batch).on_conflict_ignore().execute()

    def all_locations(self) -> Iterator[tuple[str, str]]:
        """Every recorded ``(digest, path)``, read page by page in id order (rows may change meanwhile)."""
        table = self._locations
        last = 0
        while True:
            page = list(table.select().where(table.id > last).order_by(table.id).limit(BATCH_ROWS))
            if not page:
                return
            last = page[-1].id
            for row in page:
                yield row.digest, row.path
