"""Where the bytes of a repository's copy of a blob are, on drivers with and without hard links.

A driver without hard links (S3) cannot give a second repository the very object another one holds,
so dedupe gives it a *placeholder* instead, as zot does: an empty object at ``<repo>/blobs/<alg>/<hex>``,
which keeps the OCI layout complete and costs no storage. Every read of a placeholder goes to a real
copy of the digest found through the storage index (oldest first: the original). Removing a real copy
that placeholders rely on first moves its bytes onto one of them (promotion), under the digest's blob
lock, so a placeholder never dangles. An empty object of the digest of empty content is that content,
never a placeholder. On a driver with hard links there are no placeholders: every copy is its content.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

from zotpy.oci.digest import Digest
from zotpy.storage.drivers.base import Driver, FileInfo, PathNotFound
from zotpy.storage.interfaces import StorageIndex

log = logging.getLogger(__name__)


class BlobCopies:
    """Placement, resolution and hand-over of blob copies for one store's driver and storage index."""

    def __init__(self, driver: Driver, index: StorageIndex) -> None:
        self.driver = driver
        self.index = index
        self.placeholders = not driver.hard_links

    def is_placeholder(self, digest: Digest, info: FileInfo) -> bool:
        """Whether a copy described by ``info`` is a placeholder whose bytes live elsewhere."""
        return (self.placeholders and not info.is_dir and info.size == 0
                and digest.hex != _empty_hex(digest.algorithm))

    def resolve(self, digest: Digest, path: str) -> tuple[str, FileInfo]:
        """The path holding the bytes of the copy at ``path``, and its info; PathNotFound when ``path``
        is missing or is a placeholder no real copy backs."""
        info = self.driver.stat(path)
        if not self.is_placeholder(digest, info):
            return path, info
        found = self.real_copy(digest)
        if found is None:
            log.error("placeholder without a real copy", extra={"digest": str(digest), "path": path})
            raise PathNotFound(path.rpartition("/")[2])
        return found

    def real_copy(self, digest: Digest, exclude: str | None = None) -> tuple[str, FileInfo] | None:
        """The oldest recorded copy of ``digest`` (other than ``exclude``) holding its bytes, and its info."""
        for location, info in self._present_copies(digest, exclude):
            if not self.is_placeholder(digest, info):
                return location, info
        return None

    def _present_copies(self, digest: Digest, exclude: str | None) -> Iterator[tuple[str, FileInfo]]:
        """The recorded copies of ``digest`` that exist, oldest first, with their info.

        Rows of copies that are gone are forgotten on the way (the index heals itself on reads).
        """
        for location in self.index.locations(str(digest)):
            if location == exclude:
                continue
            try:
                info = self.driver.stat(location)
            except PathNotFound:
                self.index.remove_location(str(digest), location)
                continue
            if not info.is_dir:
                yield location, info

    def share(self, digest: Digest, source: str, target: str) -> bool:
        """Give ``target`` the content of the real copy ``source`` without copying its bytes: a hard link,
        or a placeholder (``source`` is recorded first, so the placeholder resolves); False when the
        filesystem cannot link."""
        if not self.placeholders:
            return self.driver.link(source, target)
        self.index.add_location(str(digest), source)
        # Recorded before it exists: a crash in between leaves a row that reads drop as stale, never a
        # placeholder that deleting the original would not know to hand its bytes to.
        self.index.add_location(str(digest), target)
        self.driver.write_atomic(target, [])
        return True

    def hand_over(self, digest: Digest, path: str) -> None:
        """Before the copy at ``path`` is removed (under the blob lock): when it holds the bytes that
        placeholders rely on and no other real copy does, move them onto the oldest placeholder."""
        if not self.placeholders:
            return
        try:
            if self.is_placeholder(digest, self.driver.stat(path)):
                return
        except PathNotFound:
            return
        heir = None
        for location, info in self._present_copies(digest, exclude=path):
            if not self.is_placeholder(digest, info):
                return  # another real copy serves the placeholders
            heir = heir or location
        if heir is not None:
            # A server-side copy over the placeholder, then the delete of ``path``: a reader sees the
            # placeholder (resolving to ``path``) or the full object, never neither.
            self.driver.move(path, heir)
            log.info("blob promoted", extra={"digest": str(digest), "from": path, "to": heir})

    def materialise(self, digest: Digest, path: str) -> bool:
        """Replace the placeholder at ``path`` by a full copy of the digest's bytes (under the blob lock);
        True when it was a placeholder and now holds the bytes."""
        try:
            if not self.is_placeholder(digest, self.driver.stat(path)):
                return False
        except PathNotFound:
            return False
        found = self.real_copy(digest, exclude=path)
        if found is None:
            return False
        self.driver.link(found[0], path)  # on a driver without hard links, a server-side copy
        return True


def _empty_hex(algorithm: str) -> str:
    return hashlib.new(algorithm).hexdigest()
