"""Rebuild the metadata database from storage at startup (zot's parse-storage).

Every repository found on disk is (re)inserted, rows of repositories gone from disk are removed.
A repository whose index.json is unchanged since the last run (same fingerprint) is skipped, and
a stamp of the code and storage settings forces a full walk when either changes.  Each manifest
and config is parsed once per digest across all repositories.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from zotpy.meta.extract import ImageRecord, extract, is_referrers_tag, signature_for
from zotpy.meta.store import SCHEMA_VERSION, MetaStore
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import parse_stored, tag_of

__all__ = ["RebuildReport", "StorageSource", "rebuild"]

log = logging.getLogger(__name__)

STAMP_KEY = "rebuild-stamp"


class StorageSource(Protocol):
    """What the rebuild reads of one store (an adapter over ``zotpy.storage.ImageStore``)."""

    def repositories(self) -> Iterable[str]: ...
    def fingerprint(self, repo: str) -> str | None: ...
    def index_entries(self, repo: str) -> list[dict[str, Any]]: ...
    def read_blob(self, repo: str, digest: Digest) -> bytes: ...


@dataclass
class RebuildReport:
    repositories: int = 0
    parsed: int = 0
    removed: int = 0
    images: int = 0
    seconds: float = 0.0


def rebuild(store: MetaStore, sources: Sequence[StorageSource], stamp: str) -> RebuildReport:
    """Bring the metadata database in line with storage; cheap when nothing changed."""
    started = time.monotonic()
    report = RebuildReport()
    stamp = f"{stamp}|schema={SCHEMA_VERSION}"
    if store.get_state(STAMP_KEY) != stamp:
        store.clear_fingerprints()
    on_disk: dict[str, StorageSource] = {}
    for source in sources:
        for name in source.repositories():
            on_disk.setdefault(name, source)
    report.repositories = len(on_disk)
    recorded = store.repo_fingerprints()
    gone = [rid for name, (rid, _) in recorded.items() if name not in on_disk]
    if gone:
        store.delete_repos(gone)
        report.removed = len(gone)
    walker = _Walker(store)
    for name in sorted(on_disk):
        source = on_disk[name]
        fingerprint = source.fingerprint(name)
        previous = recorded.get(name)
        if fingerprint is not None and previous is not None and previous[1] == fingerprint:
            continue
        try:
            walker.parse_repo(name, source, fingerprint)
        except Exception:
            log.exception("could not index repository", extra={"repository": name})
            continue
        report.parsed += 1
    if report.parsed or report.removed:
        store.drop_all_orphans()
    store.set_state(STAMP_KEY, stamp)
    report.images = walker.new_images
    report.seconds = time.monotonic() - started
    return report


class _Walker:
    """Parses repositories, remembering which digests the database already describes."""

    def __init__(self, store: MetaStore) -> None:
        self.store = store
        self.known = store.known_images()
        self.kinds: dict[str, dict[str, Any]] = {}
        self.new_images = 0

    def parse_repo(self, name: str, source: StorageSource, fingerprint: str | None) -> None:
        entries = source.index_entries(name)
        digests = [e["digest"] for e in entries]
        self._load_kinds([d for d in digests if d in self.known and d not in self.kinds])
        records: list[ImageRecord] = []
        manifests: list[tuple[str, str]] = []
        tags: list[tuple[str, str, str]] = []
        signatures: list[tuple[str, str, str, str | None]] = []
        for entry in entries:
            tag = tag_of(entry)
            if is_referrers_tag(tag):
                continue
            digest = entry["digest"]
            media_type = entry.get("mediaType") or mt.OCI_MANIFEST
            if not self._describe(name, source, digest, media_type, records):
                continue
            signature = self._signature(digest, tag)
            if signature is not None:
                signatures.append((signature[1], digest, signature[0], tag))
                continue
            manifests.append((digest, media_type))
            if tag is not None:
                tags.append((tag, digest, media_type))
        self.store.replace_repo(name, fingerprint, records, manifests, tags, signatures, time.time())

    def _load_kinds(self, digests: list[str]) -> None:
        if digests:
            self.kinds.update(self.store.images(digests))

    def _describe(self, repo: str, source: StorageSource, digest: str, media_type: str,
                  records: list[ImageRecord]) -> bool:
        """Make sure ``digest`` (and an index's children) is described; False when unreadable."""
        if digest in self.known:
            return True
        try:
            parsed_digest = Digest.parse(digest)
            manifest = parse_stored(source.read_blob(repo, parsed_digest), media_type)
            record = extract(digest, manifest, lambda d: source.read_blob(repo, d))
        except Exception:
            log.warning("manifest not indexed: unreadable", extra={"repository": repo, "digest": digest})
            return False
        for child in record.children:
            self._describe(repo, source, child["digest"], child.get("mediaType") or mt.OCI_MANIFEST, records)
        records.append(record)
        self.known.add(digest)
        self.kinds[digest] = {"media_type": record.media_type, "artifact_type": record.artifact_type,
                              "config_media_type": record.config_media_type, "subject": record.subject}
        self.new_images += 1
        return True

    def _signature(self, digest: str, tag: str | None) -> tuple[str, str] | None:
        kind = self.kinds.get(digest)
        if kind is None:
            return None
        artifact_type = kind.get("artifact_type") or kind.get("config_media_type")
        return signature_for(kind["media_type"] in mt.INDEX_TYPES, artifact_type, kind.get("subject"), tag)
