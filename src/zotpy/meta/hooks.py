"""Keeps the metadata database in step with manifest puts, deletes and pulls.

:class:`MetaHooks` has the shape of ``zotpy.registry.ManifestHooks`` (it is checked structurally; meta
sits below the registry and does not import it).  ``on_put`` and ``on_delete`` run under the
repository lock after storage is written; when they raise, the registry undoes the storage change.
Pulls are counted in process and written in batches (:class:`DownloadCounter`), so a popular tag
does not turn every GET into a database write.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from zotpy.meta.db import close_if_open
from zotpy.meta.extract import BlobReader, ImageRecord, extract, is_referrers_tag, signature_of
from zotpy.meta.store import MetaStore
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Manifest, parse_stored

__all__ = ["DownloadCounter", "MetaHooks"]

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
FLUSH_EVENTS = 500


class DownloadCounter:
    """Pull counts gathered in this process and flushed in one transaction every second or N pulls."""

    def __init__(self, store: MetaStore, *, interval: float = FLUSH_SECONDS, max_events: int = FLUSH_EVENTS,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.interval = interval
        self.max_events = max_events
        self.clock = clock
        self._pending: dict[tuple[str, str], list[Any]] = {}
        self._events = 0
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        atexit.register(self.flush)

    def add(self, repo: str, digest: str) -> None:
        now = self.clock()
        with self._lock:
            entry = self._pending.setdefault((repo, digest), [0, now])
            entry[0] += 1
            entry[1] = now
            self._events += 1
            full = self._events >= self.max_events
            if not full and self._timer is None:
                self._timer = threading.Timer(self.interval, self._flush_from_timer)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()

    def _flush_from_timer(self) -> None:
        try:
            self.flush()
        finally:
            close_if_open(self.store.db)

    def flush(self) -> None:
        """Write what is pending; on failure the counts are kept for the next attempt."""
        with self._lock:
            pending, self._pending, self._events = self._pending, {}, 0
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if not pending:
            return
        try:
            self.store.add_downloads({key: (value[0], value[1]) for key, value in pending.items()})
        except Exception:
            log.exception("could not record download statistics; will retry")
            with self._lock:
                for key, (count, last) in pending.items():
                    entry = self._pending.setdefault(key, [0, last])
                    entry[0] += count
                    entry[1] = max(entry[1], last)
                    self._events += count

    def close(self) -> None:
        self.flush()
        atexit.unregister(self.flush)


class MetaHooks:
    """The registry's manifest hooks writing to the metadata database."""

    def __init__(self, store: MetaStore, counter: DownloadCounter | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.counter = counter if counter is not None else DownloadCounter(store)
        self.clock = clock

    def on_put(self, repo: str, digest: Digest, manifest: Manifest, tags: tuple[str, ...],
               read_blob: BlobReader) -> None:
        kept = tuple(tag for tag in tags if not is_referrers_tag(tag))
        if tags and not kept:
            return  # only referrers-schema fallback tags: not an image
        # Blob reads (the config, unknown children) happen here, before any transaction opens.
        records = self._records(str(digest), manifest, read_blob)
        signature = signature_of(manifest, kept[0] if kept else None)
        if signature is None:
            signature = next((s for s in (signature_of(manifest, t) for t in kept[1:]) if s), None)
        self.store.record_put(repo, str(digest), manifest.media_type, records, kept, signature, self.clock())

    def _records(self, digest: str, manifest: Manifest, read_blob: BlobReader) -> list[ImageRecord]:
        record = extract(digest, manifest, read_blob)
        records = [record]
        if record.children:
            known = self.store.known_images(c["digest"] for c in record.children)
            for child in record.children:
                if child["digest"] in known:
                    continue
                try:
                    child_digest = Digest.parse(child["digest"])
                    parsed = parse_stored(read_blob(child_digest), child.get("mediaType") or "")
                    records.insert(0, extract(child["digest"], parsed, read_blob))
                except Exception:  # a child that cannot be read is simply not described
                    log.warning("index child not readable", extra={"digest": child["digest"]})
        return records

    def on_delete(self, repo: str, digest: Digest, reference: str) -> None:
        self.store.record_delete(repo, str(digest), reference)

    def on_get(self, repo: str, digest: Digest, reference: str) -> None:
        if is_referrers_tag(reference):
            return
        self.counter.add(repo, str(digest))
