"""Dedupe on S3 (moto's server): one object per digest, later copies empty placeholders that every read
resolves through the storage index; deleting or collecting the original promotes a placeholder."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers.moto_s3 import MotoS3
from zotpy.locks import LockSet
from zotpy.meta.db import close_if_open, open_database
from zotpy.meta.storeindex import StoreIndex
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import parse_manifest
from zotpy.storage import layout
from zotpy.storage.dedupe_maintenance import DedupePass
from zotpy.storage.drivers.s3 import S3Driver
from zotpy.storage.drivers.s3_settings import MIN_PART_SIZE, parse_settings
from zotpy.storage.gc import GarbageCollector
from zotpy.storage.imagestore import ImageStore
from zotpy.storage.placeholder_restore import RestorePass
from zotpy.storage.scrub import OK, scrub_repository

KiB = 1024
LAYER = "application/vnd.oci.image.layer.v1.tar"


class World:
    """Stores over one bucket, one SQLite index and one lock directory (as workers of one node see them)."""

    def __init__(self, moto: MotoS3, tmp_path: Path) -> None:
        self.moto = moto
        self.bucket = moto.new_bucket()
        self.settings = parse_settings(moto.driver_settings(self.bucket, "/zot", chunksize=MIN_PART_SIZE))
        self.index = StoreIndex(open_database(str(tmp_path / "zotpy.db")))
        self.locks = LockSet(str(tmp_path / "locks"))

    def store(self, **options: Any) -> ImageStore:
        return ImageStore(S3Driver(self.settings), self.index, self.locks, **options)

    def sizes(self) -> dict[str, int]:
        """Size of every blob object in the bucket, by ``repo/blobs/<alg>/<hex>``."""
        listing = self.moto.client().get_paginator("list_objects_v2")
        pages = listing.paginate(Bucket=self.bucket, Prefix="zot/")
        return {item["Key"][len("zot/"):]: item["Size"] for page in pages for item in page.get("Contents", [])
                if "/blobs/sha" in item["Key"]}


@pytest.fixture
def world(moto_s3: MotoS3, tmp_path: Path) -> Iterator[World]:
    world = World(moto_s3, tmp_path)
    yield world
    close_if_open(world.index.db)


@pytest.fixture
def store(world: World) -> ImageStore:
    return world.store()


def blob(repo: str, digest: Digest) -> str:
    return layout.blob_path(repo, digest)


def shared(store: ImageStore, repos: str = "abc", data: bytes | None = None) -> tuple[bytes, Digest]:
    """The same blob pushed to each of ``repos`` in turn (the second by a mount through the index)."""
    data = data if data is not None else os.urandom(64 * KiB)
    digest = Digest.of(data)
    for position, repo in enumerate(repos):
        if position == 1:
            assert store.mount_blob(repo, digest, None)
        else:
            assert store.put_blob(repo, digest, iter([data])) == len(data)
    return data, digest


def put_image(store: ImageStore, repo: str, layers: list[bytes], tag: str) -> str:
    config = json.dumps({"id": os.urandom(4).hex()}).encode()
    store.put_blob(repo, Digest.of(config), [config])
    for data in layers:
        store.put_blob(repo, Digest.of(data), [data])
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(config)), "size": len(config)},
           "layers": [{"mediaType": LAYER, "digest": str(Digest.of(d)), "size": len(d)} for d in layers]}
    raw = json.dumps(doc).encode()
    store.put_manifest(repo, parse_manifest(raw, mt.OCI_MANIFEST, False), Digest.of(raw), [tag])
    return str(Digest.of(raw))


def test_one_object_per_digest_and_placeholders_elsewhere(world: World, store: ImageStore) -> None:
    data, digest = shared(store)
    assert world.sizes() == {blob("a", digest): len(data), blob("b", digest): 0, blob("c", digest): 0}
    assert store.index.locations(str(digest)) == [blob(r, digest) for r in "abc"]  # the original first


def test_reads_go_through_a_placeholder(world: World, store: ImageStore) -> None:
    data, digest = shared(store)
    for repo in "bc":
        assert store.has_blob(repo, digest)
        assert store.blob_size(repo, digest) == len(data)
        assert store.read_blob(repo, digest) == data
        with store.open_blob(repo, digest, 1000) as f:
            assert f.read() == data[1000:]
    redirecting = world.store(redirect_blobs=True)
    url = redirecting.blob_redirect("b", digest)
    assert url is not None and f"/zot/{blob('a', digest)}" in url
    assert requests.get(url, timeout=30).content == data


def test_the_empty_blob_is_its_own_content(world: World, store: ImageStore) -> None:
    _, digest = shared(store, "ab", b"")
    assert store.blob_size("b", digest) == 0 and store.read_blob("b", digest) == b""


def test_deleting_a_placeholder_leaves_the_rest(world: World, store: ImageStore) -> None:
    data, digest = shared(store)
    store.delete_blob("b", digest)
    assert not store.has_blob("b", digest)
    assert world.sizes() == {blob("a", digest): len(data), blob("c", digest): 0}
    assert store.index.locations(str(digest)) == [blob("a", digest), blob("c", digest)]
    assert store.read_blob("c", digest) == data


def test_deleting_the_original_promotes_the_oldest_placeholder(world: World, store: ImageStore) -> None:
    data, digest = shared(store)
    store.delete_blob("a", digest)
    assert not store.has_blob("a", digest)
    assert world.sizes() == {blob("b", digest): len(data), blob("c", digest): 0}
    assert store.index.locations(str(digest)) == [blob("b", digest), blob("c", digest)]
    for repo in "bc":
        assert store.read_blob(repo, digest) == data
    store.delete_blob("b", digest)
    assert world.sizes() == {blob("c", digest): len(data)}
    store.delete_blob("c", digest)
    assert world.sizes() == {} and store.index.locations(str(digest)) == []


def test_gc_of_an_unreferenced_original_keeps_the_image_that_uses_it(world: World, store: ImageStore) -> None:
    layer = os.urandom(32 * KiB)
    store.put_blob("first", Digest.of(layer), [layer])  # the original, referenced by nothing in "first"
    put_image(store, "second", [layer], "v1")  # its copy is a placeholder
    assert world.sizes()[blob("second", Digest.of(layer))] == 0
    later = time.time() + 7200
    report = GarbageCollector(store, delay=3600, clock=lambda: later).collect("first")
    assert str(Digest.of(layer)) in report.blobs
    assert not store.has_blob("first", Digest.of(layer))
    assert world.sizes()[blob("second", Digest.of(layer))] == len(layer)  # promoted
    assert [r.status for r in scrub_repository(store, "second")] == [OK]


def test_scrub_follows_a_placeholder_and_reports_one_that_dangles(world: World, store: ImageStore) -> None:
    layer = os.urandom(32 * KiB)
    put_image(store, "first", [layer], "v1")
    put_image(store, "second", [layer], "v1")
    assert [r.status for r in scrub_repository(store, "second")] == [OK]
    store.driver.delete(blob("first", Digest.of(layer)))  # behind the store's back: nothing promoted
    results = scrub_repository(store, "second")
    assert [(r.affected_blob, r.error) for r in results] == [(str(Digest.of(layer)), "blob missing")]


def test_a_read_falls_back_to_another_real_copy_and_heals_the_index(world: World) -> None:
    plain, deduping = world.store(dedupe=False), world.store()
    data, digest = shared(deduping, "ab")
    plain.put_blob("c", digest, [data])  # a full copy, recorded all the same
    deduping.driver.delete(blob("a", digest))  # the original vanishes behind the store's back
    assert deduping.read_blob("b", digest) == data
    assert deduping.index.locations(str(digest)) == [blob("b", digest), blob("c", digest)]


def test_a_push_over_a_dangling_placeholder_stores_the_content(world: World, store: ImageStore) -> None:
    data, digest = shared(store, "ab")
    store.driver.delete(blob("a", digest))
    assert not store.has_blob("b", digest)
    store.put_blob("b", digest, [data])
    assert world.sizes() == {blob("b", digest): len(data)}


def test_mount_from_a_placeholder_and_without_dedupe(world: World, store: ImageStore) -> None:
    data, digest = shared(store, "ab")
    assert store.mount_blob("c", digest, "b")
    assert world.sizes()[blob("c", digest)] == 0
    plain = world.store(dedupe=False)
    assert plain.mount_blob("d", digest, "b")  # dedupe off: a full copy of the bytes behind "b"
    assert world.sizes()[blob("d", digest)] == len(data)


def test_dedupe_off_still_reads_placeholders_and_restore_fills_them(world: World, store: ImageStore) -> None:
    data, digest = shared(store)
    plain = world.store(dedupe=False)
    assert plain.read_blob("c", digest) == data
    restore = RestorePass([store, plain])
    assert restore.stores == [plain]
    steps = list(restore.steps())
    assert len(steps) == 2  # one per placeholder
    for step in steps:
        step()
    assert world.sizes() == {blob(r, digest): len(data) for r in "abc"}
    plain.delete_blob("a", digest)
    assert plain.read_blob("b", digest) == data


def test_reconcile_of_an_empty_index_still_resolves_placeholders(world: World, store: ImageStore,
                                                                 tmp_path: Path) -> None:
    data, digest = shared(store)
    store = ImageStore(store.driver, StoreIndex(open_database(str(tmp_path / "fresh.db"))), world.locks)
    assert store.reconcile() == 3
    assert sorted(store.index.locations(str(digest))) == [blob(r, digest) for r in "abc"]
    assert store.read_blob("b", digest) == data
    store.delete_blob("a", digest)
    assert store.read_blob("c", digest) == data


def test_dedupe_pass_turns_full_duplicates_into_placeholders(world: World) -> None:
    plain = world.store(dedupe=False)
    data = os.urandom(64 * KiB)
    digest = Digest.of(data)
    for repo in "abc":
        plain.put_blob(repo, digest, [data])
    assert world.sizes() == {blob(r, digest): len(data) for r in "abc"}
    deduping = world.store()
    dedupe = DedupePass([plain, deduping])
    assert dedupe.stores == [deduping]
    reports = [dedupe.link_repository(deduping, repo) for repo in "abc"]
    assert [r.linked for r in reports] == [0, 1, 1]  # "a" holds the oldest copy: the original
    assert sum(r.bytes_freed for r in reports) == 2 * len(data)
    assert world.sizes() == {blob("a", digest): len(data), blob("b", digest): 0, blob("c", digest): 0}
    for repo in "abc":
        assert deduping.read_blob(repo, digest) == data
    deduping.delete_blob("a", digest)
    assert deduping.read_blob("c", digest) == data


def test_dedupe_pass_keeps_a_copy_when_the_original_is_damaged(world: World) -> None:
    plain = world.store(dedupe=False)
    data = os.urandom(KiB)
    digest = Digest.of(data)
    plain.driver.write_atomic(blob("a", digest), [b"x" * len(data)])  # the original, damaged (same size)
    plain.index.add_location(str(digest), blob("a", digest))
    plain.put_blob("b", digest, [data])
    deduping = world.store()
    report = DedupePass([deduping]).link_repository(deduping, "b")
    assert report.linked == 0
    assert report.skipped == [f"{digest}: the original {blob('a', digest)} does not match its digest"]
    assert world.sizes() == {blob("a", digest): len(data), blob("b", digest): len(data)}


def test_readers_of_a_placeholder_never_miss_while_originals_are_promoted(world: World) -> None:
    store = world.store()
    data, digest = shared(store, "abcd")
    stop = threading.Event()

    def read_until_stopped(repo: str) -> int:
        reads = 0
        while not stop.is_set() or not reads:
            assert world.store().read_blob(repo, digest) == data  # a store of its own, as another worker
            reads += 1
        return reads

    with ThreadPoolExecutor(2) as pool:
        readers = [pool.submit(read_until_stopped, "d") for _ in range(2)]
        for repo in "abc":  # each delete promotes the next placeholder
            store.delete_blob(repo, digest)
        stop.set()
        assert all(reader.result() > 0 for reader in readers)
    assert world.sizes() == {blob("d", digest): len(data)}
