"""OCI layout semantics for the repositories of one store, written once over a byte driver.

Blobs, upload sessions, manifests, index.json (tags as ``org.opencontainers.image.ref.name``),
referrers and dedupe placement all live here; the driver only moves bytes. Writes to a
repository's index.json happen under that repository's cross-process lock. A copy of a blob may be a
placeholder on drivers without hard links (``blobcopies``); every read here goes through it to the bytes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from zotpy.errors import (
    BlobInUse,
    BlobUnknown,
    BlobUploadUnknown,
    Denied,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    NameUnknown,
    RangeInvalid,
)
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import DEFAULT_ALGORITHM, Digest, new_hasher
from zotpy.oci.manifest import Manifest
from zotpy.oci.names import is_valid_name
from zotpy.storage import layout
from zotpy.storage.blobcopies import BlobCopies
from zotpy.storage.drivers.base import Driver, PathNotFound
from zotpy.storage.indextext import IndexText
from zotpy.storage.interfaces import Locks, StorageIndex
from zotpy.storage.repoview import ManifestCache, RepoView

log = logging.getLogger(__name__)

_SESSION_RE = re.compile(r"^[0-9a-f]{32}$")
LOCK_BUCKETS = 1024
FRESH_SECONDS = 0.1
INDEX_TEXTS_KEPT = 64
"""Repositories whose index.json text is kept for appending (the ones pushed to most recently)."""
_SKIP_DIRS = frozenset({layout.BLOBS_DIR, layout.UPLOADS_DIR, ".sync"})
READ_ATTEMPTS = 3
"""Lookups of a placeholder's real copy per read: the one found may be promoted away meanwhile."""

_T = TypeVar("_T")


class _HashStates:
    """Hash state of recent uploads in this process, so a finished upload need not be re-read."""

    def __init__(self, capacity: int = 1024) -> None:
        self._items: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self.capacity = capacity

    def take(self, key: str, size: int) -> Any | None:
        state = self._items.pop(key, None)
        return state[1] if state is not None and state[0] == size else None

    def put(self, key: str, size: int, hasher: Any) -> None:
        self._items[key] = (size, hasher)
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def drop(self, key: str) -> None:
        self._items.pop(key, None)


class ImageStore:
    """The repositories under one storage root."""

    def __init__(self, driver: Driver, index: StorageIndex, locks: Locks, *, dedupe: bool = True,
                 redirect_blobs: bool = False) -> None:
        self.driver = driver
        self.index = index
        self.locks = locks
        self.dedupe = dedupe
        self.redirect_blobs = redirect_blobs
        self.copies = BlobCopies(driver, index)
        # Placeholders resolve through the index, so it records every copy on such a driver, dedupe or not.
        self._track_locations = dedupe or self.copies.placeholders
        self._views: OrderedDict[str, tuple[tuple[int, ...], RepoView]] = OrderedDict()
        self._manifests = ManifestCache()
        self._hashes = _HashStates()
        self._pending: dict[str, list[_PendingPut]] = {}
        self._pending_guard = threading.Lock()
        self._committing: set[str] = set()
        self._index_texts: dict[str, IndexText] = {}

    # -- repositories -------------------------------------------------------------------

    def repo_exists(self, repo: str) -> bool:
        return self.driver.exists(layout.index_path(repo)) and self.driver.exists(layout.layout_path(repo))

    def ensure_repo(self, repo: str) -> None:
        """Create the repository's OCI layout on first use."""
        if self.repo_exists(repo):
            return
        with self.locks.lock(_repo_lock(repo)):
            self._ensure_repo_locked(repo)

    def _ensure_repo_locked(self, repo: str) -> None:
        if self.repo_exists(repo):
            return
        self.driver.make_dirs(f"{repo}/{layout.BLOBS_DIR}")
        if not self.driver.exists(layout.layout_path(repo)):
            self.driver.write_atomic(layout.layout_path(repo), [layout.LAYOUT_DOCUMENT])
        if not self.driver.exists(layout.index_path(repo)):
            self.driver.write_atomic(layout.index_path(repo), [layout.EMPTY_INDEX])
        self.index.add_repository(repo)

    def list_repositories(self, last: str | None, limit: int | None) -> list[str]:
        return self.index.list_repositories(last, limit)

    def index_identity(self, repo: str) -> tuple[int, ...] | None:
        """What changes whenever ``repo``'s index.json is replaced; None when it has none."""
        try:
            return self.driver.stat(layout.index_path(repo)).identity
        except PathNotFound:
            return None

    def view(self, repo: str) -> RepoView:
        """The current view of ``repo``; NAME_UNKNOWN when it has no layout."""
        try:
            info = self.driver.stat(layout.index_path(repo))
        except PathNotFound:
            raise NameUnknown(detail={"name": repo}) from None
        identity = info.identity
        cached = self._views.get(repo)
        if cached is not None and cached[0] == identity:
            self._views.move_to_end(repo)
            return cached[1]
        try:
            doc = layout.decode_index(self.driver.read_bytes(layout.index_path(repo)))
        except PathNotFound:
            raise NameUnknown(detail={"name": repo}) from None
        except ValueError:
            log.error("unreadable index.json", extra={"repository": repo})
            doc = layout.decode_index(layout.EMPTY_INDEX)
        view = RepoView(doc["manifests"], lambda digest, kind: self._load_manifest(repo, digest, kind))
        # File times tick coarsely and inodes are reused: an index.json written within the last
        # moment could be replaced by a same-size one with an identical identity, so it is not cached.
        if time.time() - info.mtime > FRESH_SECONDS:
            self._views[repo] = (identity, view)
        if len(self._views) > 4096:
            self._views.popitem(last=False)
        return view

    def _load_manifest(self, repo: str, digest: str, media_type: str) -> Manifest | None:
        try:
            parsed = Digest.parse(digest)
        except DigestInvalid:
            return None
        return self._manifests.get(digest, media_type, lambda: self._read_bytes(repo, parsed))

    # -- blobs ---------------------------------------------------------------------------

    def blob_size(self, repo: str, digest: Digest) -> int:
        """Size of a blob held by ``repo`` (a placeholder's is its real copy's); BLOB_UNKNOWN otherwise."""
        try:
            _, info = self.copies.resolve(digest, layout.blob_path(repo, digest))
        except PathNotFound:
            raise BlobUnknown(detail={"digest": str(digest)}) from None
        if info.is_dir:
            raise BlobUnknown(detail={"digest": str(digest)})
        return info.size

    def has_blob(self, repo: str, digest: Digest) -> bool:
        try:
            self.blob_size(repo, digest)
        except BlobUnknown:
            return False
        return True

    def open_blob(self, repo: str, digest: Digest, offset: int = 0) -> BinaryIO:
        return self._reading(repo, digest, lambda path: self.driver.open_read(path, offset))

    def blob_redirect(self, repo: str, digest: Digest) -> str | None:
        """A URL the client may fetch the blob from directly (``redirectBlobURL``), or None to stream it."""
        if not self.redirect_blobs:
            return None
        return self._reading(repo, digest, self.driver.presigned_url)

    def read_blob(self, repo: str, digest: Digest) -> bytes:
        """A small blob's bytes (configs, manifests); large layers are streamed instead."""
        try:
            return self._read_bytes(repo, digest)
        except PathNotFound:
            raise BlobUnknown(detail={"digest": str(digest)}) from None

    def _read_bytes(self, repo: str, digest: Digest) -> bytes:
        """A small blob's bytes; PathNotFound when ``repo`` holds none. One GET unless it is a placeholder."""
        path = layout.blob_path(repo, digest)
        data = self.driver.read_bytes(path)
        if data or not self.copies.placeholders:
            return data
        return self._reading(repo, digest, self.driver.read_bytes, missing=PathNotFound(path))

    def _reading(self, repo: str, digest: Digest, read: Callable[[str], _T],
                 missing: Exception | None = None) -> _T:
        """``read`` applied to the path holding the bytes of ``repo``'s copy; BLOB_UNKNOWN (or ``missing``)
        when there is none. A placeholder's real copy may be promoted away between the lookup and the
        read: then it is looked up again."""
        path = layout.blob_path(repo, digest)
        for _ in range(READ_ATTEMPTS if self.copies.placeholders else 1):
            source = path
            try:
                if self.copies.placeholders:
                    source = self.copies.resolve(digest, path)[0]
                return read(source)
            except PathNotFound:
                if source == path:
                    break
        raise missing or BlobUnknown(detail={"digest": str(digest)})

    def delete_blob(self, repo: str, digest: Digest) -> None:
        """Remove the repository's copy; refused while a manifest here references it."""
        with self.locks.lock(_repo_lock(repo)):
            view = self.view(repo)
            self.blob_size(repo, digest)
            if str(digest) in view.referenced_blobs or str(digest) in view.top_level:
                raise BlobInUse("blob is referenced by a manifest", detail={"digest": str(digest)})
            self._remove_blob_file(repo, digest)

    def _remove_blob_file(self, repo: str, digest: Digest) -> None:
        with self.locks.lock(_blob_lock(digest)):
            self._remove_copy(digest, layout.blob_path(repo, digest))

    def _remove_copy(self, digest: Digest, path: str) -> None:
        """Delete one copy (under the blob lock), first handing its bytes to a placeholder relying on them."""
        self.copies.hand_over(digest, path)
        try:
            self.driver.delete(path)
        except PathNotFound:
            pass
        self.index.remove_location(str(digest), path)

    def mount_blob(self, repo: str, digest: Digest, from_repo: str | None) -> bool:
        """Make a blob held elsewhere in this store available in ``repo`` without a transfer."""
        source: str | None = None
        if from_repo is not None and is_valid_name(from_repo) and self.has_blob(from_repo, digest):
            source = layout.blob_path(from_repo, digest)
        elif from_repo is None and self.dedupe:
            source = self._existing_location(digest)
        if source is None:
            return False
        self.ensure_repo(repo)
        target = layout.blob_path(repo, digest)
        with self.locks.lock(_blob_lock(digest)):
            try:
                source = self.copies.resolve(digest, source)[0]  # a placeholder's real copy
            except PathNotFound:  # garbage-collected since it was chosen
                source = self._existing_location(digest) if self.dedupe else None
                if source is None:
                    return False
            held = self._holds(digest, target)
            if not held and not (self.dedupe and self.copies.share(digest, source, target)):
                self.driver.write_atomic(target, self.driver.iter_chunks(source))
            if self._track_locations:
                self.index.add_location(str(digest), target)
        return True

    def _existing_location(self, digest: Digest) -> str | None:
        """A recorded copy of ``digest`` holding its bytes (rows of vanished copies are dropped)."""
        found = self.copies.real_copy(digest)
        return found[0] if found is not None else None

    def _holds(self, digest: Digest, path: str) -> bool:
        """Whether the copy at ``path`` is there and readable (a placeholder backed by a real copy)."""
        if not self.copies.placeholders:
            return self.driver.exists(path)
        try:
            self.copies.resolve(digest, path)
        except PathNotFound:
            return False
        return True

    # -- uploads -------------------------------------------------------------------------

    def new_upload(self, repo: str) -> str:
        """Open an upload session in ``repo``; it survives restarts (it is a file)."""
        self.ensure_repo(repo)
        session_id = uuid.uuid4().hex
        self.driver.create(layout.upload_path(repo, session_id))
        self._hashes.put(_upload_key(repo, session_id), 0, new_hasher())
        return session_id

    def upload_size(self, repo: str, session_id: str) -> int:
        return self._upload_info(repo, session_id)

    def _upload_info(self, repo: str, session_id: str) -> int:
        if not _SESSION_RE.match(session_id):
            raise BlobUploadUnknown(detail={"session": session_id[:64]})
        try:
            return self.driver.stat(layout.upload_path(repo, session_id)).size
        except PathNotFound:
            raise BlobUploadUnknown(detail={"session": session_id}) from None

    def append_upload(self, repo: str, session_id: str, chunks: Iterable[bytes], start: int | None) -> int:
        """Append a chunk; ``start`` (from Content-Range) must continue the upload, else 416."""
        key = _upload_key(repo, session_id)
        with self.locks.lock(_upload_lock(key)):
            size = self._upload_info(repo, session_id)
            if start is not None and start != size:
                raise RangeInvalid("chunk does not continue the upload", detail={"offset": size},
                                   headers=_range_headers(size))
            hasher = self._hashes.take(key, size)
            stream = _hashing(chunks, hasher) if hasher is not None else chunks
            new_size = self.driver.append(layout.upload_path(repo, session_id), stream)
            if hasher is not None:
                self._hashes.put(key, new_size, hasher)
            return new_size

    def cancel_upload(self, repo: str, session_id: str) -> None:
        self._upload_info(repo, session_id)
        self._hashes.drop(_upload_key(repo, session_id))
        try:
            self.driver.delete(layout.upload_path(repo, session_id))
        except PathNotFound:
            raise BlobUploadUnknown(detail={"session": session_id}) from None

    def finish_upload(self, repo: str, session_id: str, digest: Digest,
                      chunks: Iterable[bytes] | None, start: int | None) -> int:
        """Append the last chunk, verify the digest and commit the blob into ``repo``."""
        key = _upload_key(repo, session_id)
        if chunks is not None:
            self.append_upload(repo, session_id, chunks, start)
        with self.locks.lock(_upload_lock(key)):
            size = self._upload_info(repo, session_id)
            path = layout.upload_path(repo, session_id)
            hasher = self._hashes.take(key, size) if digest.algorithm == DEFAULT_ALGORITHM else None
            if hasher is None:
                hasher = digest.hasher()
                for chunk in self.driver.iter_chunks(path):
                    hasher.update(chunk)
            if hasher.hexdigest() != digest.hex:
                # The session stays so the client may retry, as the spec allows.
                raise DigestInvalid(detail={"digest": str(digest)})
            self._place_blob(repo, digest, path, size)
        return size

    def put_blob(self, repo: str, digest: Digest, chunks: Iterable[bytes]) -> int:
        """A monolithic upload: stream into a session file, verify, commit."""
        self.ensure_repo(repo)
        session_id = uuid.uuid4().hex
        path = layout.upload_path(repo, session_id)
        hasher = digest.hasher()
        try:
            size = self.driver.write_atomic(path, _hashing(chunks, hasher))
            if hasher.hexdigest() != digest.hex:
                raise DigestInvalid(detail={"digest": str(digest)})
            self._place_blob(repo, digest, path, size)
        finally:
            if self.driver.exists(path):
                self.driver.delete(path)
        return size

    def _place_blob(self, repo: str, digest: Digest, upload: str, size: int) -> None:
        """Move a verified upload into place, or share an identical copy (a hard link or a placeholder)
        when dedupe is on."""
        target = layout.blob_path(repo, digest)
        with self.locks.lock(_blob_lock(digest)):
            # A placeholder no real copy backs any more is replaced by the upload (self-healing).
            if not self._holds(digest, target):
                placed = False
                if self.dedupe:
                    source = self._existing_location(digest)
                    placed = (source is not None and source != target
                              and self.copies.share(digest, source, target))
                if placed:
                    self.driver.delete(upload)
                else:
                    self.driver.move(upload, target)
            else:
                self.driver.delete(upload)
            if self._track_locations:
                self.index.add_location(str(digest), target)

    # -- manifests -----------------------------------------------------------------------

    def resolve(self, repo: str, reference: str) -> tuple[Digest, str]:
        """Digest and media type of a tag or digest reference known to ``repo``."""
        view = self.view(repo)
        if ":" in reference:
            digest = Digest.parse(reference)
            entry = view.top_level.get(str(digest)) or view.children.get(str(digest))
        else:
            entry = view.tags.get(reference)
            digest = Digest.parse(entry["digest"]) if entry else None  # type: ignore[assignment]
        if entry is None or digest is None:
            raise ManifestUnknown(detail={"reference": reference[:200]})
        return digest, str(entry.get("mediaType") or mt.OCI_MANIFEST)

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, Digest, str]:
        """Raw bytes, digest and media type of a manifest by tag or digest."""
        digest, media_type = self.resolve(repo, reference)
        try:
            raw = self._read_bytes(repo, digest)
        except PathNotFound:
            raise ManifestUnknown(detail={"reference": reference[:200]}) from None
        return raw, digest, media_type

    def put_manifest(self, repo: str, manifest: Manifest, digest: Digest, tags: list[str],
                     on_commit: Callable[[], None] | None = None, verify: Iterable[Digest] = ()) -> bool:
        """Store the manifest blob and record it in index.json; returns True if the repo is new.

        ``on_commit`` runs under the repository lock once storage is written (the metadata
        hook); if it raises, storage is put back as it was and the error propagates. Each digest in
        ``verify`` (the blobs the caller found) must still be present under the lock, else
        MANIFEST_BLOB_UNKNOWN: garbage collection may have removed it in between.

        Pushes to one repository that wait for its lock in this process are applied together
        (group commit): the lock holder rewrites index.json once for all of them.
        """
        created = not self.repo_exists(repo)
        if created:
            self.ensure_repo(repo)
        path = layout.blob_path(repo, digest)
        new_blob = not self.driver.exists(path)
        if new_blob:
            # Content-addressed and written atomically: invisible as a manifest until index.json names it.
            self.driver.write_atomic(path, [manifest.raw])
        pending = _PendingPut(manifest, digest, tags, on_commit, new_blob, tuple(verify))
        with self._pending_guard:
            self._pending.setdefault(repo, []).append(pending)
            leads = repo not in self._committing
            if leads:
                self._committing.add(repo)
        if not leads:
            pending.wake.wait()
        if not pending.done:
            self._commit_pending(repo)
        if pending.error is not None:
            raise pending.error
        return created

    def _commit_pending(self, repo: str) -> None:
        """As ``repo``'s committer in this process: apply everything queued, in one index.json write.

        One greenlet per repository and process commits; the others wait on their push's event
        instead of queueing for the lock (each of them would take and drop it for nothing). When
        more pushes arrived meanwhile, the first of them becomes the next committer, so no push
        waits on work queued after it.
        """
        batch: list[_PendingPut] = []
        try:
            with self.locks.lock(_repo_lock(repo)):
                # Taken once the lock is held: pushes that arrived while it was awaited join in.
                with self._pending_guard:
                    batch = self._pending.pop(repo, [])
                self._apply_puts(repo, batch)
        except BaseException as exc:
            if not batch:
                with self._pending_guard:
                    batch = self._pending.pop(repo, [])
            for pending in batch:
                if pending.error is None:
                    pending.error = exc
        finally:
            for pending in batch:
                pending.done = True
                pending.wake.set()
            with self._pending_guard:
                queued = self._pending.get(repo)
                if queued:
                    queued[0].wake.set()
                else:
                    self._committing.discard(repo)

    def _apply_puts(self, repo: str, batch: list[_PendingPut]) -> None:
        """Record a batch of pushes in one index.json write; undo the ones whose hook fails.

        An error escaping here fails the whole batch (``_commit_pending`` records it on each push)."""
        self._ensure_repo_locked(repo)
        batch = [p for p in batch if not self._lost_reference(repo, p)]
        previous = self.driver.read_bytes(layout.index_path(repo))
        updated = self._apply_all(repo, previous, batch)
        if updated != previous:
            self.driver.write_atomic(layout.index_path(repo), [updated])
        failed = []
        for pending in batch:
            try:
                if pending.on_commit is not None:
                    pending.on_commit()
            except BaseException as exc:
                pending.error = exc
                failed.append(pending)
        if failed:
            kept = [p for p in batch if p.error is None]
            doc = layout.decode_index(previous)
            _record_all(doc["manifests"], kept)
            self.driver.write_atomic(layout.index_path(repo), [layout.encode_index(doc)])
            named = {e.get("digest") for e in doc["manifests"]}
            for pending in failed:
                if pending.new_blob and str(pending.digest) not in named:
                    self._remove_blob_file(repo, pending.digest)

    def _apply_all(self, repo: str, raw: bytes, batch: list[_PendingPut]) -> bytes:
        """index.json bytes with every push of ``batch`` recorded.

        New tags of new manifests (the common push) are appended to the bytes zotpy wrote; anything
        else (a moved tag, a second tag of a known digest, a hand-written file) parses the document.
        """
        text = IndexText.read(raw, self._index_texts.pop(repo, None))
        appended: list[dict[str, Any]] = []
        rest = batch
        if text is not None:
            for position, pending in enumerate(batch):
                target = str(pending.digest)
                if text.names_any(target, pending.tags):
                    rest = batch[position:]
                    break
                _record(appended, pending.manifest, pending.digest, pending.tags)
                text.digests.add(target)
                text.tags.update(pending.tags)
            else:
                rest = []
            if appended:
                text.append(appended)
            raw = text.raw
            self._index_texts[repo] = text
            while len(self._index_texts) > INDEX_TEXTS_KEPT:
                self._index_texts.pop(next(iter(self._index_texts)))
        if not rest:
            return raw
        self._index_texts.pop(repo, None)
        doc = layout.decode_index(raw)
        for pending in rest:
            _record(doc["manifests"], pending.manifest, pending.digest, pending.tags)
        return layout.encode_index(doc)

    def _lost_reference(self, repo: str, pending: _PendingPut) -> bool:
        """Whether a blob the caller checked before the push went since (garbage-collected): re-checked
        under the repository lock, which GC holds while it deletes."""
        for digest in pending.verify:
            if not self.driver.exists(layout.blob_path(repo, digest)):
                pending.error = ManifestBlobUnknown(detail={"digest": str(digest)})
                return True
        return False

    def delete_manifest(self, repo: str, reference: str,
                        on_commit: Callable[[Digest], None] | None = None) -> Digest:
        """Untag (tag reference) or remove every entry of a digest; returns the digest.

        ``on_commit`` runs under the repository lock after index.json is written; if it
        raises, index.json is restored and nothing is deleted.
        """
        with self.locks.lock(_repo_lock(repo)):
            view = self.view(repo)
            previous = self.driver.read_bytes(layout.index_path(repo))
            doc = layout.decode_index(previous)
            entries: list[dict[str, Any]] = doc["manifests"]
            if ":" in reference:
                digest = Digest.parse(reference)
                kept = [e for e in entries if e.get("digest") != str(digest)]
                if len(kept) == len(entries):
                    if view.is_child(str(digest)):
                        raise Denied("manifest is referenced by an image index", status=405)
                    raise ManifestUnknown(detail={"reference": reference[:200]})
                if view.is_child(str(digest)):
                    raise Denied("manifest is referenced by an image index", status=405)
            else:
                entry = view.tags.get(reference)
                if entry is None:
                    raise ManifestUnknown(detail={"reference": reference[:200]})
                digest = Digest.parse(entry["digest"])
                kept = [e for e in entries if layout.tag_of(e) != reference]
                if not any(e.get("digest") == str(digest) for e in kept):
                    kept.append(_untagged(entry))
            doc["manifests"] = kept
            self.driver.write_atomic(layout.index_path(repo), [layout.encode_index(doc)])
            try:
                if on_commit is not None:
                    on_commit(digest)
            except BaseException:
                self.driver.write_atomic(layout.index_path(repo), [previous])
                raise
            if ":" in reference and str(digest) not in view.referenced_blobs:
                self._remove_blob_file(repo, digest)
        return digest

    def tag_page(self, repo: str, last: str | None, limit: int | None) -> tuple[list[str], bool]:
        return self.view(repo).tag_page(last, limit)

    def referrers(self, repo: str, subject: Digest) -> list[dict[str, Any]]:
        try:
            view = self.view(repo)
        except NameUnknown:
            return []
        return view.referrers(subject)

    # -- startup -------------------------------------------------------------------------

    def scan(self) -> Iterator[str]:
        """Every repository on disk: directories holding an OCI layout with a valid name."""
        stack = [""]
        while stack:
            prefix = stack.pop()
            try:
                names = self.driver.list_dir(prefix or ".")
            except PathNotFound:
                continue
            is_layout = layout.INDEX_FILE in names and layout.LAYOUT_FILE in names
            if prefix and is_layout and is_valid_name(prefix):
                yield prefix
            for name in names:
                if name in _SKIP_DIRS or name.startswith((".", "_")):
                    continue
                child = f"{prefix}/{name}" if prefix else name
                if self.driver.is_dir(child):
                    stack.append(child)

    def blob_locations(self, repo: str) -> Iterator[tuple[str, str]]:
        """(digest, path) of every blob file a repository holds."""
        for algorithm in self._list(f"{repo}/{layout.BLOBS_DIR}"):
            for encoded in self._list(f"{repo}/{layout.BLOBS_DIR}/{algorithm}"):
                if not encoded.startswith("."):
                    yield f"{algorithm}:{encoded}", f"{repo}/{layout.BLOBS_DIR}/{algorithm}/{encoded}"

    def _list(self, path: str) -> list[str]:
        try:
            return self.driver.list_dir(path)
        except PathNotFound:
            return []

    def reconcile(self) -> int:
        """Bring the catalog and dedupe index in line with what is stored; returns the repository count.

        What the walk finds is added; what it does not find is forgotten only once checked to be gone,
        under its lock. Rows another node writes while the walk runs (a repository created behind it)
        are therefore kept, and rows in the order copies were made (a placeholder's original first)
        keep that order. A recorded copy that vanished from a repository still present is forgotten
        by the first read that misses it.
        """
        repos = sorted(self.scan())
        locations = (pair for repo in repos for pair in self.blob_locations(repo) if self._track_locations)
        self.index.add_all(repos, locations)
        self._forget_unseen(set(repos))
        return len(repos)

    def _forget_unseen(self, seen: set[str]) -> None:
        """Drop the index rows of repositories a walk did not see, once checked under their lock to be gone
        (one created behind the walk is there), and the blob rows in them whose object is gone."""
        for name in self.index.list_repositories():
            if name not in seen:
                with self.locks.lock(_repo_lock(name)):
                    if not self.repo_exists(name):
                        self.index.remove_repository(name)
        gone: dict[str, bool] = {}
        for digest, path in self.index.all_locations():
            repo = path.rsplit("/", 3)[0]  # <repo>/blobs/<alg>/<hex>
            if repo in seen:
                continue
            if repo not in gone:
                gone[repo] = not self.repo_exists(repo)
            if gone[repo]:
                with self.locks.lock(_blob_lock_of(digest)):
                    if not self.driver.exists(path):
                        self.index.remove_location(digest, path)

    # -- maintenance (garbage collection) -----------------------------------------------

    def repo_lock(self, repo: str) -> AbstractContextManager[None]:
        """The lock every index.json change of ``repo`` is made under; GC takes it as the API does."""
        return self.locks.lock(_repo_lock(repo))

    def blob_lock(self, digest: Digest) -> AbstractContextManager[None]:
        """The lock every placement, link or removal of a copy of ``digest`` is made under."""
        return self.locks.lock(_blob_lock(digest))

    def read_index(self, repo: str) -> dict[str, Any]:
        """``repo``'s index.json document as stored (read it under ``repo_lock`` to change it)."""
        try:
            return layout.decode_index(self.driver.read_bytes(layout.index_path(repo)))
        except PathNotFound:
            raise NameUnknown(detail={"name": repo}) from None

    def write_index(self, repo: str, doc: dict[str, Any]) -> None:
        """Replace ``repo``'s index.json atomically (under ``repo_lock``); every process's view follows it."""
        self.driver.write_atomic(layout.index_path(repo), [layout.encode_index(doc)])
        self._views.pop(repo, None)

    def view_of(self, repo: str, entries: list[dict[str, Any]]) -> RepoView:
        """A view over index entries being edited, reading manifests from ``repo``."""
        return RepoView(entries, lambda digest, kind: self._load_manifest(repo, digest, kind))

    def blob_times(self, repo: str) -> dict[str, float]:
        """digest → last change of every blob file ``repo`` holds (the later of mtime and ctime, so a
        blob just linked from an old copy by dedupe counts as new)."""
        out: dict[str, float] = {}
        for digest, path in self.blob_locations(repo):
            try:
                info = self.driver.stat(path)
            except PathNotFound:
                continue
            if not info.is_dir:
                out[digest] = max(info.mtime, info.changed)
        return out

    def remove_unreferenced_blob(self, repo: str, digest: str, changed_before: float) -> bool:
        """Delete ``repo``'s copy of a blob unless it changed at or after ``changed_before``.

        The caller holds ``repo_lock`` and has found no manifest referencing it; the blob lock keeps a
        concurrent dedupe link or mount from picking this copy while it goes. A copy other repositories'
        placeholders rely on hands its bytes to one of them first.
        """
        try:
            parsed = Digest.parse(digest)
        except DigestInvalid:
            return False
        path = layout.blob_path(repo, parsed)
        with self.locks.lock(_blob_lock(parsed)):
            try:
                info = self.driver.stat(path)
            except PathNotFound:
                self.index.remove_location(digest, path)
                return False
            if info.is_dir or max(info.mtime, info.changed) >= changed_before:
                return False
            self._remove_copy(parsed, path)
        return True

    def upload_times(self, repo: str) -> dict[str, float]:
        """name → last write of every file in ``repo``'s upload directory (sessions, leftover temp files)."""
        out: dict[str, float] = {}
        for name in self._list(f"{repo}/{layout.UPLOADS_DIR}"):
            try:
                info = self.driver.stat(f"{repo}/{layout.UPLOADS_DIR}/{name}")
            except PathNotFound:
                continue
            if not info.is_dir:
                out[name] = info.mtime
        return out

    def remove_stale_upload(self, repo: str, name: str, changed_before: float) -> bool:
        """Delete an upload file not written since before ``changed_before`` (under the session's lock)."""
        key = _upload_key(repo, name)
        path = f"{repo}/{layout.UPLOADS_DIR}/{name}"
        with self.locks.lock(_upload_lock(key)):
            try:
                if self.driver.stat(path).mtime >= changed_before:
                    return False
                self.driver.delete(path)
            except PathNotFound:
                return False
            self._hashes.drop(key)
        return True

    def remove_empty_repository(self, repo: str, changed_before: float) -> bool:
        """Remove ``repo``'s layout when index.json names nothing, no blob or upload is left and index.json
        is older than ``changed_before``; drop it from the catalog. The caller holds ``repo_lock``.
        Repositories nested below it stay."""
        try:
            info = self.driver.stat(layout.index_path(repo))
        except PathNotFound:
            return False
        if info.mtime >= changed_before or self.read_index(repo)["manifests"]:
            return False
        if next(self.blob_locations(repo), None) is not None or self._list(f"{repo}/{layout.UPLOADS_DIR}"):
            return False
        for part in (layout.BLOBS_DIR, layout.UPLOADS_DIR):
            if self.driver.exists(f"{repo}/{part}"):
                self.driver.delete_tree(f"{repo}/{part}")
        for name in (layout.INDEX_FILE, layout.LAYOUT_FILE):
            try:
                self.driver.delete(f"{repo}/{name}")
            except PathNotFound:
                pass
        if not self._list(repo):
            try:
                self.driver.delete_tree(repo)
            except PathNotFound:
                pass  # on S3 a directory goes with its last key
        self.index.remove_repository(repo)
        self._views.pop(repo, None)
        return True


@dataclass
class _PendingPut:
    """A manifest push waiting for its repository's index.json to be rewritten."""

    manifest: Manifest
    digest: Digest
    tags: list[str]
    on_commit: Callable[[], None] | None
    new_blob: bool
    verify: tuple[Digest, ...] = ()  # blobs that must still exist when the push lands (see _lost_reference)
    done: bool = False
    error: BaseException | None = None
    # Resolved per call, so it is greenlet-aware once gevent has patched threading.
    wake: threading.Event = field(default_factory=lambda: threading.Event())


def _record_all(entries: list[dict[str, Any]], batch: list[_PendingPut]) -> bool:
    changed = False
    for pending in batch:
        changed = _record(entries, pending.manifest, pending.digest, pending.tags) or changed
    return changed


def _record(entries: list[dict[str, Any]], manifest: Manifest, digest: Digest, tags: list[str]) -> bool:
    """Point ``tags`` (or an untagged entry) at ``digest`` in index.json entries; True if changed."""
    target = str(digest)
    descriptor: dict[str, Any] = {"mediaType": manifest.media_type, "digest": target,
                                  "size": len(manifest.raw)}
    if manifest.artifact_type:
        descriptor["artifactType"] = manifest.artifact_type
    if not tags:
        if any(e.get("digest") == target for e in entries):
            return False
        entries.append(descriptor)
        return True
    wanted = set(tags)
    tagged = [(e, layout.tag_of(e)) for e in entries]
    current: dict[str, list[dict[str, Any]]] = {}
    for entry, tag in tagged:
        if tag in wanted:
            current.setdefault(tag, []).append(entry)
    moving = [t for t in tags if [e.get("digest") for e in current.get(t, [])] != [target]]
    if not moving:
        return False
    removed = [entry for tag in moving for entry in current.get(tag, [])]
    removed_ids = {id(entry) for entry in removed}
    kept = [entry for entry, tag in tagged
            if id(entry) not in removed_ids and not (tag is None and entry.get("digest") == target)]
    present = {entry.get("digest") for entry in kept} | {target}
    for old in removed:
        if old.get("digest") not in present:  # a moved tag leaves its old manifest reachable by digest
            kept.append(_untagged(old))
            present.add(old.get("digest"))
    kept.extend({**descriptor, "annotations": {mt.TAG_ANNOTATION: tag}} for tag in moving)
    entries[:] = kept
    return True


def _untagged(entry: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in entry.items() if k != "annotations"}
    annotations = {k: v for k, v in (entry.get("annotations") or {}).items() if k != mt.TAG_ANNOTATION}
    if annotations:
        out["annotations"] = annotations
    return out


def _hashing(chunks: Iterable[bytes], hasher: Any) -> Iterator[bytes]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


def _lock_name(kind: str, key: str) -> str:
    """Locks are hashed into a fixed set per kind, so lock files stay few; kinds never collide,
    which keeps the one nesting (an upload's lock, then a blob's) free of self-deadlock."""
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % LOCK_BUCKETS
    return f"{kind}-{bucket}"


def _repo_lock(repo: str) -> str:
    return _lock_name("repo", repo)


def _blob_lock(digest: Digest) -> str:
    return _blob_lock_of(str(digest))


def _blob_lock_of(digest: str) -> str:
    return _lock_name("blob", digest)


def _upload_lock(key: str) -> str:
    return _lock_name("upload", key)


def _upload_key(repo: str, session_id: str) -> str:
    return f"{repo}@{session_id}"


def _range_headers(size: int) -> dict[str, str]:
    return {"Range": f"0-{size - 1}" if size > 0 else "0-0"}

