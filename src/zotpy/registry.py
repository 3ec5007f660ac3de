"""The registry service the HTTP routes call.

It validates names, digests, references and manifest contents, picks the store a
repository lives in, asks it to act, and sends ``zotpy.signals`` after a change lands.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from zotpy import signals
from zotpy.errors import (
    BlobUnknown,
    DigestInvalid,
    Invalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    StorageError,
)
from zotpy.oci.digest import DEFAULT_ALGORITHM, Digest, looks_like_digest
from zotpy.oci.manifest import Manifest, parse_manifest
from zotpy.oci.names import check_name, check_tag, is_valid_tag
from zotpy.storage.imagestore import ImageStore

MAX_TAGS_PER_PUSH = 46
MAX_PAGE = 1 << 31


@dataclass(frozen=True)
class StoredManifest:
    raw: bytes
    digest: Digest
    media_type: str


@dataclass(frozen=True)
class PushedManifest:
    digest: Digest
    subject: Digest | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class UploadStart:
    """Either a mounted blob (``digest`` set) or a new session (``session_id`` set)."""

    session_id: str | None = None
    digest: Digest | None = None


class StoreRouter:
    """The default store plus sub-path stores chosen by a repository's first path component."""

    def __init__(self, default: ImageStore, sub_paths: Mapping[str, ImageStore] | None = None) -> None:
        self.default = default
        self.sub_paths = dict(sub_paths or {})

    def for_repo(self, repo: str) -> ImageStore:
        return self.sub_paths.get(repo.split("/", 1)[0], self.default)

    def all(self) -> list[ImageStore]:
        return [self.default, *self.sub_paths.values()]


BlobReader = Callable[[Digest], bytes]
"""Reads a small blob (an image config, a child manifest) of the repository being changed."""


class ManifestHooks(Protocol):
    """Keeps a derived index (the metadata database) in step with manifest changes.

    ``on_put`` and ``on_delete`` run under the repository lock after storage is written;
    if one raises, the storage change is undone and the client gets the error.
    """

    def on_put(self, repo: str, digest: Digest, manifest: Manifest, tags: tuple[str, ...],
               read_blob: BlobReader) -> None: ...
    def on_delete(self, repo: str, digest: Digest, reference: str) -> None: ...
    def on_get(self, repo: str, digest: Digest, reference: str) -> None: ...


class Registry:
    """Distribution-spec operations over the stores."""

    def __init__(self, stores: StoreRouter, *, docker_compat: bool = False) -> None:
        self.stores = stores
        self.docker_compat = docker_compat
        self.hooks: list[ManifestHooks] = []

    def add_hooks(self, hooks: ManifestHooks) -> None:
        self.hooks.append(hooks)

    def _store(self, repo: str) -> ImageStore:
        return self.stores.for_repo(check_name(repo))

    # -- blobs ---------------------------------------------------------------------------

    def blob_size(self, repo: str, digest: str) -> tuple[Digest, int]:
        parsed = Digest.parse(digest)
        store = self._store(repo)
        return parsed, store.blob_size(repo, parsed)

    def open_blob(self, repo: str, digest: Digest, offset: int = 0) -> BinaryIO:
        return self._store(repo).open_blob(repo, digest, offset)

    def blob_redirect(self, repo: str, digest: Digest) -> str | None:
        """Where to send a blob GET instead of streaming it (``storage.redirectBlobURL``), if anywhere."""
        return self._store(repo).blob_redirect(repo, digest)

    def delete_blob(self, repo: str, digest: str) -> None:
        parsed = Digest.parse(digest)
        store = self._store(repo)
        if not store.repo_exists(repo):
            raise NameUnknown(detail={"name": repo})
        store.delete_blob(repo, parsed)

    # -- uploads -------------------------------------------------------------------------

    def start_upload(self, repo: str, mount: str | None = None, from_repo: str | None = None,
                     may_read: Callable[[str], bool] | None = None) -> UploadStart:
        """Mount when asked and possible, else open a new session.

        With ``may_read`` (access control on) only a copy in a repository the caller may read is mounted.
        """
        store = self._store(repo)
        if mount is not None:
            digest = Digest.parse(mount)
            source = from_repo if from_repo and self.stores.for_repo(from_repo) is store else None
            if may_read is not None:
                if source is not None and not may_read(source):
                    source = None
                elif from_repo is None:
                    source = _readable_copy(store, digest, may_read)
                if source is not None and store.mount_blob(repo, digest, source):
                    return UploadStart(digest=digest)
            elif (source or from_repo is None) and store.mount_blob(repo, digest, source):
                return UploadStart(digest=digest)
        return UploadStart(session_id=store.new_upload(repo))

    def upload_monolithic(self, repo: str, digest: str, chunks: Iterable[bytes]) -> Digest:
        parsed = Digest.parse(digest)
        size = self._store(repo).put_blob(repo, parsed, chunks)
        signals.blob_uploaded.send(self, repo=repo, digest=parsed, size=size)
        return parsed

    def upload_size(self, repo: str, session_id: str) -> int:
        return self._store(repo).upload_size(repo, session_id)

    def upload_chunk(self, repo: str, session_id: str, chunks: Iterable[bytes], start: int | None) -> int:
        return self._store(repo).append_upload(repo, session_id, chunks, start)

    def finish_upload(self, repo: str, session_id: str, digest: str | None,
                      chunks: Iterable[bytes] | None, start: int | None) -> Digest:
        if not digest:
            raise DigestInvalid("the digest query parameter is required")
        parsed = Digest.parse(digest)
        size = self._store(repo).finish_upload(repo, session_id, parsed, chunks, start)
        signals.blob_uploaded.send(self, repo=repo, digest=parsed, size=size)
        return parsed

    def cancel_upload(self, repo: str, session_id: str) -> None:
        self._store(repo).cancel_upload(repo, session_id)

    # -- manifests -----------------------------------------------------------------------

    def get_manifest(self, repo: str, reference: str, *, pull: bool = True) -> StoredManifest:
        store = self._store(repo)
        _check_reference(reference)
        raw, digest, media_type = store.get_manifest(repo, reference)
        if pull:
            for hooks in self.hooks:
                hooks.on_get(repo, digest, reference)
            signals.manifest_pulled.send(self, repo=repo, digest=digest, reference=reference)
        return StoredManifest(raw, digest, media_type)

    def put_manifest(self, repo: str, reference: str, raw: bytes, content_type: str | None,
                     extra_tags: Iterable[str] = ()) -> PushedManifest:
        """Validate and store a manifest pushed by tag or by digest (with optional ``?tag=``)."""
        store = self._store(repo)
        manifest = parse_manifest(raw, content_type, self.docker_compat)
        if looks_like_digest(reference):
            wanted = Digest.parse(reference)
            digest = manifest.digest(wanted.algorithm)
            if digest != wanted:
                raise DigestInvalid("manifest digest does not match the reference",
                                    detail={"digest": str(wanted)})
            tags = _unique(check_tag(t) for t in extra_tags)
            if len(tags) > MAX_TAGS_PER_PUSH:
                raise Invalid("too many tags", status=414)
        else:
            digest = manifest.digest(DEFAULT_ALGORITHM)
            tags = [check_tag(reference)]
        checked = self._check_references(store, repo, manifest)

        def commit() -> None:
            for hooks in self.hooks:
                hooks.on_put(repo, digest, manifest, tuple(tags), lambda d: store.read_blob(repo, d))

        store.put_manifest(repo, manifest, digest, tags, on_commit=commit, verify=checked)
        signals.manifest_pushed.send(self, repo=repo, digest=digest, manifest=manifest, tags=tuple(tags))
        subject = manifest.subject.digest if manifest.subject else None
        return PushedManifest(digest, subject, tuple(tags))

    def _check_references(self, store: ImageStore, repo: str, manifest: Manifest) -> list[Digest]:
        """Every blob and child manifest must be here with the stated size (the subject may come later);
        returns their digests, which the store checks again under the repository lock."""
        checked = []
        for descriptor in (*manifest.blobs(), *manifest.manifests):
            if descriptor.is_foreign:
                continue
            try:
                size = store.blob_size(repo, descriptor.digest)
            except BlobUnknown:
                raise ManifestBlobUnknown(detail={"digest": str(descriptor.digest)}) from None
            if size != descriptor.size:
                raise ManifestInvalid("descriptor size does not match the stored content",
                                      detail={"digest": str(descriptor.digest), "size": descriptor.size})
            checked.append(descriptor.digest)
        return checked

    def delete_manifest(self, repo: str, reference: str) -> Digest:
        store = self._store(repo)
        _check_reference(reference)
        if not store.repo_exists(repo):
            raise NameUnknown(detail={"name": repo})
        def commit(digest: Digest) -> None:
            for hooks in self.hooks:
                hooks.on_delete(repo, digest, reference)

        digest = store.delete_manifest(repo, reference, on_commit=commit)
        signals.manifest_deleted.send(self, repo=repo, digest=digest, reference=reference)
        return digest

    # -- listings ------------------------------------------------------------------------

    def tags(self, repo: str, n: int | None, last: str | None) -> tuple[list[str], bool]:
        return self._store(repo).tag_page(repo, last, n)

    def tag_exists(self, repo: str, tag: str) -> bool:
        """True when ``repo`` has ``tag`` (access control tells a new tag from a re-pointed one)."""
        try:
            self._store(repo).resolve(repo, tag)
        except (RegistryError, StorageError):
            return False
        return True

    def catalog(self, n: int | None, last: str | None,
                visible: Callable[[str], bool] | None = None) -> tuple[list[str], bool]:
        """Repository names after ``last`` across every store, sorted; and whether more follow.

        ``visible`` (access control on) filters the names before they are paged.
        """
        if visible is not None:
            names = [name for name in self.catalog(None, last)[0] if visible(name)]
            if n is None or n >= MAX_PAGE:
                return names, False
            return names[:n], len(names) > n
        if n is not None and n >= MAX_PAGE:
            n = None  # more than any store holds: the whole list
        limit = None if n is None else n + 1
        pages = [store.list_repositories(last, limit) for store in self.stores.all()]
        merged = list(heapq.merge(*pages))
        if n is None:
            return merged, False
        return merged[:n], len(merged) > n

    def referrers(self, repo: str, digest: str, artifact_types: list[str]) -> list[dict[str, Any]]:
        parsed = Digest.parse(digest)
        found = self._store(repo).referrers(repo, parsed)
        if artifact_types:
            # Media types have no spaces: an unencoded '+' in the query arrives as one.
            wanted = {value.replace(" ", "+") for value in artifact_types}
            found = [d for d in found if d.get("artifactType") in wanted]
        return found


def _readable_copy(store: ImageStore, digest: Digest, may_read: Callable[[str], bool]) -> str | None:
    """A repository of ``store`` holding ``digest`` that the caller may read (the dedupe index knows)."""
    for location in store.index.locations(str(digest)):
        owner = location.rsplit("/blobs/", 1)[0]
        if owner != location and may_read(owner):
            return owner
    return None


def _check_reference(reference: str) -> None:
    if looks_like_digest(reference):
        Digest.parse(reference)
    elif not is_valid_tag(reference):
        raise ManifestUnknown("invalid tag", detail={"reference": reference[:200]})


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
