"""Reads and writes of the metadata database: short transactions, bulk reads with IN lists.

Writes take parsed records (see :mod:`zotpy.meta.extract`); blob I/O always happens before a
transaction opens.  Reads return plain dicts and tuples so callers never hold peewee rows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import peewee

from zotpy.meta.db import migrate
from zotpy.meta.extract import ImageRecord
from zotpy.meta.models import Tables

__all__ = ["COMPONENT", "SCHEMA_VERSION", "MetaStore", "loads"]

COMPONENT = "meta"
GENERATION_KEY = "generation"
SCHEMA_VERSION = 1
IN_CHUNK = 500
"""Values per IN list: SQLite's oldest limit is 999 parameters."""

T = TypeVar("T")
StatRow = tuple[float, str | None, int, float | None]
"""pushed, pushed by, downloads, last pull"""
SignatureKey = tuple[int, str]


def loads(text: str | None, default: Any) -> Any:
    """Decode a JSON column (``default`` when empty)."""
    return json.loads(text) if text else default


def _chunks(values: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class MetaStore:
    """The metadata tables of one database (the default store's)."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.t = Tables(db)

    # -- schema --------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create or migrate the tables (cheap when current: one read of the recorded version)."""
        tables = self.t.all()
        migrate(self.db, COMPONENT, SCHEMA_VERSION, {1: lambda db: db.create_tables(tables, safe=True)})

    # -- state ---------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        state = self.t.state
        return state.select(state.value).where(state.key == key).scalar()

    def set_state(self, key: str, value: str) -> None:
        state = self.t.state
        state.insert(key=key, value=value).on_conflict(
            conflict_target=[state.key], update={state.value: value}).execute()

    def generation(self) -> str | None:
        """Changes whenever repositories, tags or manifests change (not on pulls): lets readers cache."""
        return self.get_state(GENERATION_KEY)

    def _changed(self) -> None:
        self.set_state(GENERATION_KEY, uuid.uuid4().hex)

    # -- writes --------------------------------------------------------------------------

    def repo_id(self, name: str, create: bool = True) -> int | None:
        repo = self.t.repo
        found = repo.select(repo.id).where(repo.name == name).scalar()
        if found is None and create:
            repo.insert(name=name).on_conflict_ignore().execute()
            found = repo.select(repo.id).where(repo.name == name).scalar()
        return found

    def insert_images(self, records: Sequence[ImageRecord]) -> None:
        """Add content-addressed image rows (and their layer and child links) not yet present."""
        if not records:
            return
        t = self.t
        unique = {r.digest: r for r in records}
        rows = [r.row() for r in unique.values()]
        self._insert(t.image, list(rows[0]), [tuple(row.values()) for row in rows])
        layer_rows = sorted({(digest, r.digest) for r in unique.values() for digest, _ in r.layers})
        self._insert(t.layer, ["layer", "image"], layer_rows)
        child_rows = [(r.digest, c["digest"], i) for r in unique.values() for i, c in enumerate(r.children)]
        self._insert(t.child, ["parent", "child", "position"], child_rows)
        self._index_sizes([r.digest for r in unique.values() if r.children])

    def _insert(self, model: type[peewee.Model], columns: list[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert many rows with one prepared statement, skipping rows whose key exists.

        Bulk paths (the rebuild) spend most of their time building SQL with ``insert_many``; this
        builds it once. ``ON CONFLICT DO NOTHING`` is understood by SQLite (3.24+) and PostgreSQL.
        """
        if not rows:
            return
        db = self.db
        opening, closing = db.quote[0], db.quote[-1]  # the database's identifier quotes, e.g. '""'

        def quoted(name: str) -> str:
            return f"{opening}{name}{closing}"

        names = ", ".join(quoted(model._meta.columns[c].column_name) for c in columns)
        params = ", ".join([db.param] * len(columns))
        sql = (f"INSERT INTO {quoted(model._meta.table_name)} ({names}) VALUES ({params}) "
               "ON CONFLICT DO NOTHING")
        db.cursor().executemany(sql, rows)

    def _index_sizes(self, parents: Sequence[str]) -> None:
        """An index's total size is the sum of its children's (zot's rule: the index itself not counted)."""
        if not parents:
            return
        t = self.t
        for digest in parents:
            children = t.child.select(t.child.child).where(t.child.parent == digest)
            total = t.image.select(peewee.fn.COALESCE(peewee.fn.SUM(t.image.total_size), 0)) \
                .where(t.image.digest.in_(children)).scalar() or 0
            t.image.update(total_size=total).where(t.image.digest == digest).execute()

    def known_images(self, digests: Iterable[str] | None = None) -> set[str]:
        image = self.t.image
        if digests is None:
            return set(image.select(image.digest).scalars())
        out: set[str] = set()
        for chunk in _chunks(digests):
            out.update(image.select(image.digest).where(image.digest.in_(chunk)).scalars())
        return out

    def record_put(self, repo: str, digest: str, media_type: str, records: Sequence[ImageRecord],
                   tags: Sequence[str], signature: tuple[str, str] | None, now: float | None = None) -> None:
        """A manifest landed in ``repo`` under ``tags``: one short transaction."""
        now = time.time() if now is None else now
        t = self.t
        with self.db.atomic():
            self.insert_images(records)
            repo_id = self.repo_id(repo)
            self._changed()
            if signature is not None:
                tool, subject = signature
                rows = [{"repo": repo_id, "subject": subject, "digest": digest, "tool": tool, "tag": tag}
                        for tag in ([*tags] if tags else [None])]
                t.signature.insert_many(rows).on_conflict_ignore().execute()
                return
            t.manifest.insert(repo=repo_id, digest=digest, media_type=media_type, pushed=now) \
                .on_conflict_ignore().execute()
            for tag in tags:
                t.tag.insert(repo=repo_id, name=tag, digest=digest, media_type=media_type, tagged=now) \
                    .on_conflict(conflict_target=[t.tag.repo, t.tag.name],
                                 update={t.tag.digest: digest, t.tag.media_type: media_type,
                                         t.tag.tagged: now}).execute()

    def record_delete(self, repo: str, digest: str, reference: str) -> None:
        """A tag was removed, or every entry of a digest (``reference`` is then the digest)."""
        t = self.t
        with self.db.atomic():
            repo_id = self.repo_id(repo, create=False)
            if repo_id is None:
                return
            self._changed()
            if ":" not in reference:
                t.tag.delete().where((t.tag.repo == repo_id) & (t.tag.name == reference)).execute()
                t.signature.delete().where((t.signature.repo == repo_id) & (t.signature.tag == reference)) \
                    .execute()
                return
            t.tag.delete().where((t.tag.repo == repo_id) & (t.tag.digest == digest)).execute()
            t.manifest.delete().where((t.manifest.repo == repo_id) & (t.manifest.digest == digest)).execute()
            signature = t.signature
            signature.delete().where((signature.repo == repo_id) & (signature.digest == digest)).execute()
            self._drop_orphans([digest])

    def _drop_orphans(self, digests: Sequence[str]) -> None:
        """Forget image rows no repository, index or signature refers to any more."""
        t = self.t
        for digest in digests:
            used = (t.manifest.select().where(t.manifest.digest == digest).exists()
                    or t.child.select().where(t.child.child == digest).exists()
                    or t.signature.select().where(t.signature.digest == digest).exists())
            if not used:
                t.image.delete().where(t.image.digest == digest).execute()
                t.layer.delete().where(t.layer.image == digest).execute()
                t.child.delete().where(t.child.parent == digest).execute()

    def drop_all_orphans(self) -> int:
        """Remove every unreferenced image row (after a rebuild); returns how many went."""
        t = self.t
        removed = 0
        while True:
            used_top = t.manifest.select(t.manifest.digest)
            used_child = t.child.select(t.child.child)
            used_sig = t.signature.select(t.signature.digest)
            orphans = list(t.image.select(t.image.digest).where(
                t.image.digest.not_in(used_top) & t.image.digest.not_in(used_child)
                & t.image.digest.not_in(used_sig)).scalars())
            if not orphans:
                return removed
            with self.db.atomic():
                for chunk in _chunks(orphans):
                    t.image.delete().where(t.image.digest.in_(chunk)).execute()
                    t.layer.delete().where(t.layer.image.in_(chunk)).execute()
                    t.child.delete().where(t.child.parent.in_(chunk)).execute()
            removed += len(orphans)

    def add_downloads(self, counts: Mapping[tuple[str, str], tuple[int, float]]) -> None:
        """Apply batched pull counts ``(repo, digest) → (pulls, last pull time)`` in one transaction."""
        if not counts:
            return
        t = self.t
        names = sorted({repo for repo, _ in counts})
        with self.db.atomic():
            ids = dict(self._fetch(t.repo.select(t.repo.name, t.repo.id).where(t.repo.name.in_(names))))
            for (repo, digest), (pulls, last) in counts.items():
                repo_id = ids.get(repo)
                if repo_id is None:
                    continue
                t.manifest.update(downloads=t.manifest.downloads + pulls, last_pull=last) \
                    .where((t.manifest.repo == repo_id) & (t.manifest.digest == digest)).execute()

    # -- rebuild -------------------------------------------------------------------------

    def repo_fingerprints(self) -> dict[str, tuple[int, str | None]]:
        repo = self.t.repo
        rows = self._fetch(repo.select(repo.id, repo.name, repo.fingerprint))
        return {name: (rid, fp) for rid, name, fp in rows}

    def clear_fingerprints(self) -> None:
        self.t.repo.update(fingerprint=None).execute()

    def delete_repos(self, ids: Sequence[int]) -> None:
        t = self.t
        with self.db.atomic():
            self._changed()
            for chunk in _chunks(ids):
                for table in (t.tag, t.manifest, t.signature):
                    table.delete().where(table.repo.in_(chunk)).execute()
                t.repo.delete().where(t.repo.id.in_(chunk)).execute()

    def replace_repo(self, name: str, fingerprint: str | None, records: Sequence[ImageRecord],
                     manifests: Sequence[tuple[str, str]], tags: Sequence[tuple[str, str, str]],
                     signatures: Sequence[tuple[str, str, str, str | None]], now: float) -> None:
        """Make the rows of one repository match what storage holds, keeping push and pull statistics.

        ``manifests`` are (digest, media type); ``tags`` (name, digest, media type); ``signatures``
        (subject, signature digest, tool, tag).
        """
        t = self.t
        with self.db.atomic():
            self.insert_images(records)
            repo_id = self.repo_id(name)
            self._changed()
            old_stats = {row[0]: row[1:] for row in self._fetch(t.manifest.select(
                t.manifest.digest, t.manifest.pushed, t.manifest.pushed_by, t.manifest.downloads,
                t.manifest.last_pull).where(t.manifest.repo == repo_id))}
            old_tags = {tag_name: (d, tagged) for tag_name, d, tagged in self._fetch(t.tag.select(
                t.tag.name, t.tag.digest, t.tag.tagged).where(t.tag.repo == repo_id))}
            for table in (t.tag, t.manifest, t.signature):
                table.delete().where(table.repo == repo_id).execute()
            manifest_rows = []
            for digest, media_type in dict(manifests).items():
                pushed, pushed_by, downloads, last_pull = old_stats.get(digest, (now, None, 0, None))
                manifest_rows.append((repo_id, digest, media_type, pushed, pushed_by, downloads, last_pull))
            self._insert(t.manifest, ["repo", "digest", "media_type", "pushed", "pushed_by", "downloads",
                                      "last_pull"], manifest_rows)
            tag_rows = []
            for tag_name, digest, media_type in tags:
                previous = old_tags.get(tag_name)
                tagged = previous[1] if previous and previous[0] == digest else now
                tag_rows.append((repo_id, tag_name, digest, media_type, tagged))
            self._insert(t.tag, ["repo", "name", "digest", "media_type", "tagged"], tag_rows)
            sig_rows = [(repo_id, s, d, tool, tag) for s, d, tool, tag in signatures]
            self._insert(t.signature, ["repo", "subject", "digest", "tool", "tag"], sig_rows)
            t.repo.update(fingerprint=fingerprint).where(t.repo.id == repo_id).execute()

    # -- bulk reads ----------------------------------------------------------------------

    def repos(self, names: Sequence[str] | None = None) -> dict[int, str]:
        """Repository id → name (all, or those named)."""
        repo = self.t.repo
        if names is None:
            return dict(self._fetch(repo.select(repo.id, repo.name)))
        out: dict[int, str] = {}
        for chunk in _chunks(names):
            out.update(self._fetch(repo.select(repo.id, repo.name).where(repo.name.in_(chunk))))
        return out

    def tags(self, repo_ids: Sequence[int] | None = None) -> list[tuple[int, str, str, str, float]]:
        """(repo id, tag, digest, media type, tagged time) rows."""
        tag = self.t.tag
        fields = (tag.repo, tag.name, tag.digest, tag.media_type, tag.tagged)
        if repo_ids is None:
            return self._fetch(tag.select(*fields))
        out: list[tuple[int, str, str, str, float]] = []
        for chunk in _chunks(repo_ids):
            out.extend(self._fetch(tag.select(*fields).where(tag.repo.in_(chunk))))
        return out

    def tags_for_digests(self, digests: Sequence[str]) -> list[tuple[int, str, str, str, float]]:
        tag = self.t.tag
        out: list[tuple[int, str, str, str, float]] = []
        for chunk in _chunks(digests):
            out.extend(self._fetch(tag.select(tag.repo, tag.name, tag.digest, tag.media_type, tag.tagged)
                               .where(tag.digest.in_(chunk))))
        return out

    def images(self, digests: Iterable[str] | None, columns: Sequence[str] | None = None
               ) -> dict[str, dict[str, Any]]:
        """digest → image row as a dict of ``columns`` (all columns by default; all rows for None)."""
        image = self.t.image
        names = list(columns or image._meta.sorted_field_names)
        if "digest" not in names:
            names.insert(0, "digest")
        fields = [getattr(image, name) for name in names]
        rows: list[tuple[Any, ...]] = []
        if digests is None:
            rows = self._fetch(image.select(*fields))
        else:
            for chunk in _chunks(set(digests)):
                rows.extend(self._fetch(image.select(*fields).where(image.digest.in_(chunk))))
        position = names.index("digest")
        return {row[position]: dict(zip(names, row, strict=True)) for row in rows}

    def _fetch(self, query: Any) -> list[tuple[Any, ...]]:
        """Run a select and return plain tuples (bulk reads skip peewee's row objects)."""
        return list(self.db.execute(query).fetchall())

    def stats(self, repo_ids: Sequence[int] | None = None) -> dict[tuple[int, str], StatRow]:
        """(repo id, digest) → (pushed, pushed by, downloads, last pull)."""
        m = self.t.manifest
        fields = (m.repo, m.digest, m.pushed, m.pushed_by, m.downloads, m.last_pull)
        rows: list[tuple[Any, ...]] = []
        if repo_ids is None:
            rows = self._fetch(m.select(*fields))
        else:
            for chunk in _chunks(repo_ids):
                rows.extend(self._fetch(m.select(*fields).where(m.repo.in_(chunk))))
        return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}

    def stats_for(self, keys: Iterable[tuple[int, str]]) -> dict[tuple[int, str], StatRow]:
        """Statistics of these (repo id, digest) pairs only."""
        m = self.t.manifest
        wanted = set(keys)
        out: dict[tuple[int, str], StatRow] = {}
        for chunk in _chunks(sorted({digest for _, digest in wanted})):
            query = m.select(m.repo, m.digest, m.pushed, m.pushed_by, m.downloads, m.last_pull) \
                .where(m.digest.in_(chunk))
            for row in self._fetch(query):
                if (row[0], row[1]) in wanted:
                    out[(row[0], row[1])] = (row[2], row[3], row[4], row[5])
        return out

    def repo_downloads(self, repo_ids: Sequence[int] | None = None) -> dict[int, int]:
        """repository id → pulls of all its manifests."""
        m = self.t.manifest
        query = m.select(m.repo, peewee.fn.SUM(m.downloads)).group_by(m.repo)
        if repo_ids is None:
            return {rid: int(total or 0) for rid, total in self._fetch(query)}
        out: dict[int, int] = {}
        for chunk in _chunks(repo_ids):
            out.update((rid, int(total or 0)) for rid, total in self._fetch(query.where(m.repo.in_(chunk))))
        return out

    def signatures(self, repo_ids: Sequence[int] | None = None) -> dict[SignatureKey, list[tuple[str, str]]]:
        """(repo id, signed digest) → [(tool, signature digest)]."""
        s = self.t.signature
        fields = (s.repo, s.subject, s.tool, s.digest)
        rows: list[tuple[Any, ...]] = []
        if repo_ids is None:
            rows = self._fetch(s.select(*fields))
        else:
            for chunk in _chunks(repo_ids):
                rows.extend(self._fetch(s.select(*fields).where(s.repo.in_(chunk))))
        out: dict[tuple[int, str], list[tuple[str, str]]] = {}
        for repo_id, subject, tool, digest in rows:
            entry = (tool, digest)
            found = out.setdefault((repo_id, subject), [])
            if entry not in found:
                found.append(entry)
        return out

    def referrers(self, repo_ids: Sequence[int] | None, subjects: Sequence[str] | None = None
                  ) -> dict[tuple[int, str], list[dict[str, Any]]]:
        """(repo id, subject) → descriptors of the manifests in that repository naming it as subject."""
        m, image = self.t.manifest, self.t.image
        query = (m.select(m.repo, image.subject, image.digest, image.media_type, image.artifact_type,
                          image.config_media_type, image.size, image.annotations)
                 .join(image, on=(m.digest == image.digest)).where(image.subject.is_null(False)))
        rows: list[tuple[Any, ...]] = []
        if repo_ids is None and subjects is None:
            rows = self._fetch(query)
        elif subjects is not None:
            for chunk in _chunks(subjects):
                part = query.where(image.subject.in_(chunk))
                if repo_ids is not None and len(repo_ids) == 1:
                    part = part.where(m.repo == repo_ids[0])
                rows.extend(self._fetch(part))
        else:
            for ids in _chunks(repo_ids or []):
                rows.extend(self._fetch(query.where(m.repo.in_(ids))))
        out: dict[tuple[int, str], list[dict[str, Any]]] = {}
        allowed = set(repo_ids) if repo_ids is not None else None
        for repo_id, subject, digest, media_type, artifact_type, config_type, size, notes in rows:
            if allowed is not None and repo_id not in allowed:
                continue
            out.setdefault((repo_id, subject), []).append({
                "MediaType": media_type, "ArtifactType": artifact_type or config_type, "Size": size,
                "Digest": digest,
                "Annotations": [{"Key": k, "Value": v} for k, v in sorted(loads(notes, {}).items())],
            })
        for found in out.values():
            found.sort(key=lambda d: d["Digest"])
        return out

    def star_counts(self, names: Sequence[str] | None = None) -> dict[str, int]:
        star = self.t.star
        query = star.select(star.repo, peewee.fn.COUNT(star.user)).group_by(star.repo)
        if names is None:
            return dict(self._fetch(query))
        out: dict[str, int] = {}
        for chunk in _chunks(names):
            out.update(self._fetch(query.where(star.repo.in_(chunk))))
        return out

    def user_repos(self, user: str, kind: str) -> set[str]:
        """Repositories a user starred (``kind='star'``) or bookmarked (``'bookmark'``)."""
        table = self.t.star if kind == "star" else self.t.bookmark
        return set(table.select(table.repo).where(table.user == user).scalars())

    def images_with_config(self, digest: str) -> list[str]:
        image = self.t.image
        return list(image.select(image.digest).where(image.config_digest == digest).scalars())

    def images_with_layer(self, digest: str) -> list[str]:
        layer = self.t.layer
        return list(layer.select(layer.image).where(layer.layer == digest).scalars())

    def images_with_first_layer(self, digest: str) -> dict[str, dict[str, Any]]:
        image = self.t.image
        query = image.select(image.digest).where(image.first_layer == digest)
        digests = [row[0] for row in self._fetch(query)]
        return self.images(digests, ["digest", "layers"]) if digests else {}

    def digests_with_prefix(self, prefix: str, limit: int = 1000) -> list[str]:
        """Image digests starting with ``prefix`` (a range scan on the primary key)."""
        image = self.t.image
        query = image.select(image.digest).where((image.digest >= prefix) & (image.digest < prefix + "\x7f"))
        return list(query.limit(limit).scalars())

    def parents(self, children: Sequence[str]) -> dict[str, list[str]]:
        """child digest → digests of the indexes listing it."""
        child = self.t.child
        out: dict[str, list[str]] = {}
        for chunk in _chunks(children):
            query = child.select(child.parent, child.child).where(child.child.in_(chunk))
            for parent, kid in self._fetch(query):
                out.setdefault(kid, []).append(parent)
        return out
