"""Dedupe maintenance: share the duplicate copies a root gathered while ``storage.dedupe`` was off.

A one-shot job at scheduler start, one repository per step (zot's startup dedupe pass). The storage
index, merged with what is stored by ``ImageStore.reconcile`` before workers serve, lists every copy of
a digest oldest first; the first copy still on disk is the original. Each other copy that is a separate
file is replaced, atomically and under the digest's blob lock (the lock uploads, mounts and GC take), by
a hard link to the original, once the original has been re-hashed and found sound: a damaged original
is never spread over good copies. Readers holding the old file keep reading it.

On a driver without hard links (S3) a full copy is replaced the same way by an empty placeholder
(``blobcopies``) when another real copy, re-hashed and found sound, holds the bytes: what remains is
one object per digest, as if dedupe had always been on.

Turning dedupe off needs no pass on a local root: hard links are independent names of one file, so
deleting one repository's copy leaves every other readable. On S3 placeholders stay readable too;
``placeholder_restore`` fills them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from zotpy.errors import DigestInvalid, PathNotFound
from zotpy.oci.digest import Digest
from zotpy.storage.drivers.base import FileInfo
from zotpy.storage.scrub import READ_SIZE, Throttle

if TYPE_CHECKING:
    from zotpy.storage.imagestore import ImageStore

log = logging.getLogger(__name__)


@dataclass
class DedupeReport:
    """What one repository step did."""

    repository: str
    linked: int = 0
    bytes_freed: int = 0
    skipped: list[str] = field(default_factory=list)  # "digest: reason" for copies left as they are


class DedupePass:
    """Links (or, without hard links, turns into placeholders) duplicate blob copies in every store that
    has dedupe on."""

    def __init__(self, stores: Sequence[ImageStore], throttle: Callable[[], Throttle] = Throttle) -> None:
        self.stores = [store for store in stores if store.dedupe]
        self.throttle = throttle
        # (digest, file id) of verified originals; (digest, (path, identity)) without hard links
        self._sound: set[tuple[str, str, object]] = set()

    def steps(self) -> Iterator[Callable[[], None]]:
        """One callable per repository that links its duplicate copies and logs what it did."""
        for store in self.stores:
            for repo in sorted(store.scan()):
                yield partial(self._logged, store, repo)

    def _logged(self, store: ImageStore, repo: str) -> None:
        report = self.link_repository(store, repo)
        if report.linked or report.skipped:
            log.info("dedupe linked duplicates", extra={"repository": repo, "linked": report.linked,
                                                        "bytesFreed": report.bytes_freed,
                                                        "skipped": report.skipped})

    def link_repository(self, store: ImageStore, repo: str) -> DedupeReport:
        report = DedupeReport(repo)
        throttle = self.throttle()
        for digest, path in list(store.blob_locations(repo)):
            try:
                parsed = Digest.parse(digest)
            except DigestInvalid:
                continue
            reason = self._link_copy(store, parsed, path, throttle, report)
            if reason:
                report.skipped.append(f"{digest}: {reason}")
        return report

    def _link_copy(self, store: ImageStore, digest: Digest, path: str, throttle: Throttle,
                   report: DedupeReport) -> str | None:
        """Make ``path`` a link to the original of ``digest``; why not, when it stays a separate file."""
        if store.copies.placeholders:
            return self._placehold_copy(store, digest, path, throttle, report)
        driver = store.driver
        original = _original(store, digest, path)
        if original is None:
            store.index.add_location(str(digest), path)  # the first copy: later ones link to it
            return None
        try:
            copy_info, original_info = driver.stat(path), driver.stat(original)
        except PathNotFound:
            return None  # removed meanwhile (GC): nothing to link
        if not copy_info.file_id or not original_info.file_id:
            return None  # a backend without hard links: nothing to do here
        if copy_info.file_id == original_info.file_id:
            store.index.add_location(str(digest), path)
            return None

        def link() -> str | None:
            if not driver.link(original, path):
                return "the filesystem cannot hard-link these paths"
            store.index.add_location(str(digest), path)
            return None

        return self._replace_copy(store, digest, (path, copy_info), (original, original_info),
                                  lambda info: info.file_id, link, throttle, report)

    def _placehold_copy(self, store: ImageStore, digest: Digest, path: str, throttle: Throttle,
                        report: DedupeReport) -> str | None:
        """Replace the full copy at ``path`` by a placeholder when another real copy holds the bytes."""
        driver = store.driver
        try:
            copy_info = driver.stat(path)
        except PathNotFound:
            return None
        if copy_info.is_dir:
            return None
        store.index.add_location(str(digest), path)
        if store.copies.is_placeholder(digest, copy_info):
            return None
        found = store.copies.real_copy(digest)
        if found is None or found[0] == path:
            return None  # the oldest real copy: the original
        original, original_info = found

        def placehold() -> str | None:
            store.copies.share(digest, original, path)
            return None

        return self._replace_copy(store, digest, (path, copy_info), (original, original_info),
                                  lambda info: info.identity, placehold, throttle, report)

    def _replace_copy(self, store: ImageStore, digest: Digest, copy: tuple[str, FileInfo],
                      original: tuple[str, FileInfo], version: Callable[[FileInfo], object],
                      replace: Callable[[], str | None], throttle: Throttle,
                      report: DedupeReport) -> str | None:
        """Replace a full copy by what ``replace`` makes of it (a link, a placeholder): once the sizes
        agree and the original hashes to ``digest``, under the blob lock, unless either file changed
        meanwhile (``version`` tells). Returns why not, when the copy stays as it is."""
        (path, copy_info), (source, source_info) = copy, original
        if copy_info.size != source_info.size:
            return f"size {copy_info.size} differs from the original's {source_info.size} ({source})"
        key = (str(digest), source, version(source_info))
        if key not in self._sound:
            if not _hashes_to(store, source, digest, throttle):
                return f"the original {source} does not match its digest"
            self._sound.add(key)
        with store.blob_lock(digest):
            try:
                # Either may have been removed or replaced while the original was being hashed.
                if version(store.driver.stat(source)) != version(source_info):
                    return None
                if version(store.driver.stat(path)) != version(copy_info):
                    return None
            except PathNotFound:
                return None
            reason = replace()
            if reason:
                return reason
        report.linked += 1
        report.bytes_freed += copy_info.size
        throttle.blob_done()
        return None


def _original(store: ImageStore, digest: Digest, path: str) -> str | None:
    """The oldest recorded copy of ``digest`` still on disk; None when that is ``path`` itself."""
    for location in store.index.locations(str(digest)):
        if location == path:
            return None
        try:
            if not store.driver.stat(location).is_dir:
                return location
        except PathNotFound:
            store.index.remove_location(str(digest), location)
    return None


def _hashes_to(store: ImageStore, path: str, digest: Digest, throttle: Throttle) -> bool:
    hasher = digest.hasher()
    try:
        for chunk in store.driver.iter_chunks(path, READ_SIZE):
            hasher.update(chunk)
            throttle.read(len(chunk))
    except PathNotFound:
        return False
    return bool(hasher.hexdigest() == digest.hex)
