"""Scrub: re-hash every blob an image needs and check every manifest's references (read-only).

One repository at a time (one scheduler step each): every entry of its index.json is checked from its
manifest down to each config and layer, through child manifests of indexes and the subject of referrers.
A blob is re-hashed at most once per repository pass. Nothing is repaired; the results say which image
is affected, by which blob and why (zot's ``status``/``affectedBlob``/``error``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from zotpy.errors import BlobUnknown, ManifestInvalid, NameUnknown
from zotpy.oci.manifest import Descriptor, Manifest, parse_stored
from zotpy.storage.layout import tag_of

if TYPE_CHECKING:
    from zotpy.storage.imagestore import ImageStore

log = logging.getLogger(__name__)

OK = "ok"
AFFECTED = "affected"
READ_SIZE = 1024 * 1024
MAX_DEPTH = 8  # nested indexes deeper than this are not followed (none exist in practice)


@dataclass(frozen=True)
class ScrubResult:
    """The verdict on one index.json entry of a repository."""

    repository: str
    reference: str  # the tag, or the digest of an untagged manifest
    status: str
    affected_blob: str = ""
    error: str = ""

    @property
    def image(self) -> str:
        """``repo:tag`` or ``repo@digest``, as zot names images in its scrub output."""
        sep = "@" if ":" in self.reference else ":"
        return f"{self.repository}{sep}{self.reference}"

    @property
    def affected(self) -> bool:
        return self.status == AFFECTED

    def log_fields(self) -> dict[str, str]:
        return {"image": self.image, "status": self.status, "affectedBlob": self.affected_blob,
                "error": self.error}


class _BlobProblem(Exception):
    """One blob that is missing, of the wrong size, unreadable or does not hash to its digest."""

    def __init__(self, digest: str, error: str) -> None:
        super().__init__(error)
        self.digest = digest
        self.error = error


@dataclass
class Throttle:
    """Bounds the IO of a scrub: a pause after each blob and an optional ceiling on bytes per second."""

    pause: float = 0.0
    bytes_per_second: float = 0.0
    sleep: Callable[[float], None] = time.sleep
    _started: float = field(default=0.0, init=False)
    _read: int = field(default=0, init=False)

    def read(self, count: int) -> None:
        if self.bytes_per_second <= 0:
            return
        now = time.monotonic()
        if not self._started:
            self._started = now
        self._read += count
        ahead = self._read / self.bytes_per_second - (now - self._started)
        if ahead > 0:
            self.sleep(ahead)

    def blob_done(self) -> None:
        if self.pause > 0:
            self.sleep(self.pause)


class RepositoryScrub:
    """Checks the images of one repository, remembering each blob's verdict for the pass."""

    def __init__(self, store: ImageStore, repo: str, throttle: Throttle | None = None) -> None:
        self.store = store
        self.repo = repo
        self.throttle = throttle or Throttle()
        self._verdicts: dict[str, str | None] = {}  # digest -> error, None when sound

    def run(self) -> list[ScrubResult]:
        try:
            entries = self.store.view(self.repo).entries
        except NameUnknown:
            return []
        results = []
        for entry in entries:
            digest = str(entry.get("digest"))
            reference = tag_of(entry) or digest
            try:
                self._check_manifest(_descriptor(entry), depth=0)
            except _BlobProblem as problem:
                results.append(ScrubResult(self.repo, reference, AFFECTED, problem.digest, problem.error))
            else:
                results.append(ScrubResult(self.repo, reference, OK))
        return results

    def _check_manifest(self, descriptor: Descriptor, depth: int) -> None:
        """The manifest blob, then everything it references."""
        self._check_blob(descriptor)
        manifest = self._parse(descriptor)
        for blob in manifest.blobs():
            if not blob.is_foreign:
                self._check_blob(blob)
        if depth < MAX_DEPTH:
            for child in manifest.manifests:
                self._check_manifest(child, depth + 1)
        # A referrer may be pushed before its subject (the spec allows it): only a subject that is
        # present must be sound.
        subject = manifest.subject
        if subject is not None and self.store.has_blob(self.repo, subject.digest) and depth < MAX_DEPTH:
            self._check_manifest(subject, depth + 1)

    def _parse(self, descriptor: Descriptor) -> Manifest:
        digest = str(descriptor.digest)
        try:
            return parse_stored(self.store.read_blob(self.repo, descriptor.digest), descriptor.media_type)
        except ManifestInvalid as exc:
            raise _BlobProblem(digest, f"invalid manifest: {exc.message}") from None
        except BlobUnknown:
            raise _BlobProblem(digest, "blob missing") from None

    def _check_blob(self, descriptor: Descriptor) -> None:
        digest = str(descriptor.digest)
        if digest not in self._verdicts:
            self._verdicts[digest] = self._verify(descriptor)
            self.throttle.blob_done()
        error = self._verdicts[digest]
        if error is not None:
            raise _BlobProblem(digest, error)

    def _verify(self, descriptor: Descriptor) -> str | None:
        """None when the blob exists, has the descriptor's size and hashes to its digest; else why not."""
        try:
            size = self.store.blob_size(self.repo, descriptor.digest)
        except BlobUnknown:
            return "blob missing"
        if size != descriptor.size:
            return f"size {size} differs from the descriptor's {descriptor.size}"
        hasher = descriptor.digest.hasher()
        try:
            with self.store.open_blob(self.repo, descriptor.digest) as stream:
                while chunk := stream.read(READ_SIZE):
                    hasher.update(chunk)
                    self.throttle.read(len(chunk))
        except BlobUnknown:
            return "blob missing"
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"
        if hasher.hexdigest() != descriptor.digest.hex:
            return "content does not match the digest"
        return None


def _descriptor(entry: dict[str, object]) -> Descriptor:
    """An index.json entry as a descriptor; a malformed entry is itself the affected blob."""
    try:
        return Descriptor.from_json(entry, "index.json")
    except ManifestInvalid as exc:
        raise _BlobProblem(str(entry.get("digest", "")), f"invalid index.json entry: {exc.message}") from None


def scrub_repository(store: ImageStore, repo: str, throttle: Throttle | None = None) -> list[ScrubResult]:
    """Check every image of ``repo`` in ``store``; one result per index.json entry."""
    return RepositoryScrub(store, repo, throttle).run()


def log_results(results: Sequence[ScrubResult]) -> None:
    """One JSON log line per image: info when sound, error when affected."""
    for result in results:
        level = logging.ERROR if result.affected else logging.INFO
        log.log(level, "scrub %s", result.status, extra={"repository": result.repository,
                                                          **result.log_fields()})


class ScrubPass:
    """Scrub over several stores, one repository per step (the scheduler's unit of work).

    ``owner(repo)`` names the store a repository routes to; a repository lying on a store's root that
    routes elsewhere is unreachable and is not scrubbed there.
    """

    def __init__(self, stores: Sequence[ImageStore], owner: Callable[[str], ImageStore],
                 throttle: Callable[[], Throttle] = Throttle) -> None:
        self.stores = stores
        self.owner = owner
        self.throttle = throttle

    def targets(self) -> Iterator[tuple[ImageStore, str]]:
        for store in self.stores:
            for repo in sorted(store.scan()):
                if self.owner(repo) is store:
                    yield store, repo

    def scrub(self, store: ImageStore, repo: str) -> list[ScrubResult]:
        return scrub_repository(store, repo, self.throttle())

    def steps(self) -> Iterator[Callable[[], None]]:
        """One callable per repository that scrubs it and logs the results."""
        for store, repo in self.targets():
            yield partial(self._logged, store, repo)

    def _logged(self, store: ImageStore, repo: str) -> None:
        log_results(self.scrub(store, repo))


TABLE_HEADER = ("REPOSITORY", "TAG/DIGEST", "STATUS", "AFFECTED BLOB", "ERROR")


def format_table(results: Sequence[ScrubResult]) -> str:
    """Results as aligned columns under ``TABLE_HEADER`` (zot's ``scrub`` output)."""
    rows = [TABLE_HEADER, *((r.repository, r.reference, r.status, r.affected_blob, r.error) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
