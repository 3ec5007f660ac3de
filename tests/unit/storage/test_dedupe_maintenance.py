"""Tests for zotpy.storage.dedupe_maintenance: duplicates made with dedupe off get linked, safely."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from zotpy.locks import LockSet
from zotpy.meta.db import close_if_open, open_database
from zotpy.meta.storeindex import StoreIndex
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Manifest, parse_manifest
from zotpy.storage import layout
from zotpy.storage.dedupe_maintenance import DedupePass
from zotpy.storage.drivers import LocalDriver
from zotpy.storage.imagestore import ImageStore
from zotpy.storage.scrub import OK, Throttle, scrub_repository

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
REPOS = ("alpha", "beta/one", "gamma")


class Root:
    """One storage root; ``store()`` opens it as a restarted server would, with dedupe on or off."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "root"
        self.private = tmp_path / "private"
        self.indexes: list[StoreIndex] = []

    def store(self, *, dedupe: bool) -> ImageStore:
        index = StoreIndex(open_database(str(self.private / "index.db")))
        self.indexes.append(index)
        locks = LockSet(str(self.private / "locks"))
        return ImageStore(LocalDriver(str(self.path)), index, locks, dedupe=dedupe)

    def inode(self, repo: str, digest: Digest) -> int:
        return (self.path / layout.blob_path(repo, digest)).stat().st_ino

    def close(self) -> None:
        for index in self.indexes:
            close_if_open(index.db)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Root]:
    r = Root(tmp_path)
    yield r
    r.close()


def push(store: ImageStore, repo: str, tag: str, *layers: bytes) -> Manifest:
    config = json.dumps({"repo": repo}).encode()
    descriptors = []
    for data, media_type in [(config, mt.OCI_CONFIG), *((layer, LAYER_TYPE) for layer in layers)]:
        store.put_blob(repo, Digest.of(data), [data])
        descriptors.append({"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data)})
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": descriptors[0],
            "layers": descriptors[1:]}
    manifest = parse_manifest(json.dumps(body).encode(), mt.OCI_MANIFEST, False)
    store.put_manifest(repo, manifest, manifest.digest(), [tag])
    return manifest


def run(dedupe: DedupePass) -> None:
    for step in dedupe.steps():
        step()


@pytest.fixture
def shared() -> tuple[bytes, bytes]:
    return os.urandom(200_000), os.urandom(3000)


@pytest.fixture
def duplicated(root: Root, shared: tuple[bytes, bytes]) -> ImageStore:
    """Three repositories pushed with dedupe off: the shared layers are separate files in each."""
    plain = root.store(dedupe=False)
    for repo in REPOS:
        push(plain, repo, "v1", *shared)
    big = Digest.of(shared[0])
    assert len({root.inode(repo, big) for repo in REPOS}) == 3
    store = root.store(dedupe=True)
    store.reconcile()  # what `prepare` does before workers serve
    return store


def test_turning_dedupe_on_links_duplicates(root: Root, duplicated: ImageStore,
                                            shared: tuple[bytes, bytes]) -> None:
    dedupe = DedupePass([duplicated])
    assert len(list(dedupe.steps())) == len(REPOS)  # one step per repository
    reports = [dedupe.link_repository(duplicated, repo) for repo in REPOS]
    assert [r.linked for r in reports] == [0, 2, 2]  # the first repository holds the originals
    assert reports[1].bytes_freed == sum(len(layer) for layer in shared)
    assert all(r.skipped == [] for r in reports)
    for data in shared:
        digest = Digest.of(data)
        assert len({root.inode(repo, digest) for repo in REPOS}) == 1
        assert (root.path / layout.blob_path("gamma", digest)).stat().st_nlink == 3
        assert sorted(duplicated.index.locations(str(digest))) == sorted(
            layout.blob_path(repo, digest) for repo in REPOS)
    for repo in REPOS:  # every image still whole
        assert [r.status for r in scrub_repository(duplicated, repo)] == [OK]
        raw, _, _ = duplicated.get_manifest(repo, "v1")
        for data in shared:
            assert duplicated.read_blob(repo, Digest.of(data)) == data
        assert json.loads(raw)["layers"][0]["digest"] == str(Digest.of(shared[0]))


def test_second_pass_has_nothing_to_do(duplicated: ImageStore) -> None:
    dedupe = DedupePass([duplicated])
    run(dedupe)
    assert all(dedupe.link_repository(duplicated, repo).linked == 0 for repo in REPOS)


def test_pass_logs_per_repository(duplicated: ImageStore, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="zotpy.storage.dedupe_maintenance"):
        run(DedupePass([duplicated]))
    lines = [(vars(r)["repository"], vars(r)["linked"]) for r in caplog.records
             if r.name == "zotpy.storage.dedupe_maintenance"]
    assert lines == [("beta/one", 2), ("gamma", 2)]


def test_a_damaged_original_is_not_spread(root: Root, duplicated: ImageStore,
                                          shared: tuple[bytes, bytes]) -> None:
    big = Digest.of(shared[0])
    original = root.path / layout.blob_path("alpha", big)
    damaged = bytearray(original.read_bytes())
    damaged[100] ^= 1
    original.write_bytes(bytes(damaged))
    report = DedupePass([duplicated]).link_repository(duplicated, "gamma")
    assert report.linked == 1  # the sound small layer
    assert report.skipped == [f"{big}: the original alpha/blobs/sha256/{big.hex} does not match its digest"]
    assert (root.path / layout.blob_path("gamma", big)).read_bytes() == shared[0]
    assert root.inode("gamma", big) != root.inode("alpha", big)


def test_a_copy_of_another_size_is_left_alone(root: Root, duplicated: ImageStore,
                                              shared: tuple[bytes, bytes]) -> None:
    small = Digest.of(shared[1])
    (root.path / layout.blob_path("gamma", small)).write_bytes(b"truncated")
    report = DedupePass([duplicated]).link_repository(duplicated, "gamma")
    assert report.linked == 1
    assert report.skipped[0].startswith(f"{small}: size 9 differs")


def test_a_copy_removed_while_hashing_is_skipped_quietly(root: Root, duplicated: ImageStore,
                                                         shared: tuple[bytes, bytes]) -> None:
    big = Digest.of(shared[0])
    copy = root.path / layout.blob_path("gamma", big)

    class RemovingThrottle(Throttle):
        def read(self, count: int) -> None:
            copy.unlink(missing_ok=True)  # GC removes the copy while the original is being verified

    report = DedupePass([duplicated], RemovingThrottle).link_repository(duplicated, "gamma")
    assert not copy.exists()
    assert report.skipped == []
    assert report.linked == 1  # only the small layer, whose original was hashed after the removal


def test_stores_without_dedupe_get_no_steps(root: Root, shared: tuple[bytes, bytes]) -> None:
    plain = root.store(dedupe=False)
    push(plain, "alpha", "v1", *shared)
    assert list(DedupePass([plain]).steps()) == []


def test_turning_dedupe_off_leaves_everything_readable(root: Root, shared: tuple[bytes, bytes]) -> None:
    linked = root.store(dedupe=True)
    for repo in REPOS:
        push(linked, repo, "v1", *shared)
    big = Digest.of(shared[0])
    assert len({root.inode(repo, big) for repo in REPOS}) == 1
    plain = root.store(dedupe=False)
    plain.reconcile()
    # One repository lets go of its image and blobs; the others keep theirs.
    digest = plain.delete_manifest("alpha", "v1")
    assert digest
    plain.delete_manifest("alpha", str(digest))
    for data in shared:
        plain.delete_blob("alpha", Digest.of(data))
    assert not plain.has_blob("alpha", big)
    for repo in REPOS[1:]:
        assert [r.status for r in scrub_repository(plain, repo)] == [OK]
        assert plain.read_blob(repo, big) == shared[0]
    # New pushes with dedupe off write separate files; nothing links them.
    push(plain, "delta", "v1", *shared)
    assert root.inode("delta", big) != root.inode("gamma", big)
    assert list(DedupePass([plain]).steps()) == []
