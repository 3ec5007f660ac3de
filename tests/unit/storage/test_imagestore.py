"""Tests for zotpy.storage.imagestore over a real LocalDriver, StoreIndex (SQLite) and LockSet."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from zotpy.errors import (
    BlobInUse,
    BlobUnknown,
    BlobUploadUnknown,
    Denied,
    DigestInvalid,
    ManifestUnknown,
    NameUnknown,
    RangeInvalid,
)
from zotpy.locks import LockSet
from zotpy.meta.db import close_if_open, open_database
from zotpy.meta.storeindex import StoreIndex
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Manifest, parse_manifest
from zotpy.storage import layout
from zotpy.storage.drivers import LocalDriver
from zotpy.storage.imagestore import ImageStore, _repo_lock

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


class World:
    """One storage root; each ``store()`` is an ImageStore as another worker process would build it."""

    def __init__(self, root: Path, private: Path) -> None:
        self.root = root
        self.private = private
        self.indexes: list[StoreIndex] = []

    def store(self, *, dedupe: bool = True, db: str = "index.db") -> ImageStore:
        index = StoreIndex(open_database(str(self.private / db)))
        self.indexes.append(index)
        locks = LockSet(str(self.private / "locks"))
        return ImageStore(LocalDriver(str(self.root)), index, locks, dedupe=dedupe)

    def path(self, relative: str) -> Path:
        return self.root / relative

    def files_under(self, relative: str) -> list[str]:
        base = self.root / relative
        if not base.exists():
            return []
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())

    def close(self) -> None:
        for index in self.indexes:
            close_if_open(index.db)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "root", tmp_path / "private")
    yield w
    w.close()


@pytest.fixture
def store(world: World) -> ImageStore:
    return world.store()


def inode(world: World, relative: str) -> int:
    return world.path(relative).stat().st_ino


def blob_file(repo: str, digest: Digest) -> str:
    return layout.blob_path(repo, digest)


def image(store: ImageStore, repo: str, name: str, **extra: Any) -> Manifest:
    """Upload a config and a layer into ``repo`` and return an (unstored) manifest referencing them."""
    config, layer = f'{{"name":"{name}"}}'.encode(), f"layer of {name}".encode()
    for data in (config, layer):
        store.put_blob(repo, Digest.of(data), [data])
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(config)), "size": len(config)},
            "layers": [{"mediaType": LAYER_TYPE, "digest": str(Digest.of(layer)), "size": len(layer)}],
            **extra}
    return parse_manifest(json.dumps(body).encode(), mt.OCI_MANIFEST, False)


def push(store: ImageStore, repo: str, manifest: Manifest, *tags: str) -> Digest:
    digest = manifest.digest()
    store.put_manifest(repo, manifest, digest, list(tags))
    return digest


def descriptor(manifest: Manifest) -> dict[str, Any]:
    return {"mediaType": manifest.media_type, "digest": str(manifest.digest()), "size": len(manifest.raw)}


def index_of(store: ImageStore, repo: str, *children: Manifest) -> Manifest:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [descriptor(c) for c in children]}
    return parse_manifest(json.dumps(body).encode(), mt.OCI_INDEX, False)


def entries(world: World, repo: str) -> list[dict[str, Any]]:
    return json.loads(world.path(f"{repo}/index.json").read_bytes())["manifests"]


def failing(*chunks: bytes) -> Iterator[bytes]:
    yield from chunks
    raise RuntimeError("client went away")


# -- repositories ----------------------------------------------------------------------


def test_ensure_repo_writes_the_layout(world: World, store: ImageStore) -> None:
    assert not store.repo_exists("a/b")
    store.ensure_repo("a/b")
    assert json.loads(world.path("a/b/oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads(world.path("a/b/index.json").read_bytes()) == {"schemaVersion": 2, "manifests": []}
    assert world.path("a/b/blobs").is_dir()
    assert store.repo_exists("a/b")
    assert store.index.has_repository("a/b")
    assert store.list_repositories(None, None) == ["a/b"]
    before = world.path("a/b/index.json").stat().st_ino
    store.ensure_repo("a/b")
    assert world.path("a/b/index.json").stat().st_ino == before


def test_ensure_repo_completes_a_partial_layout(world: World, store: ImageStore) -> None:
    world.path("r").mkdir(parents=True)
    world.path("r/index.json").write_bytes(b'{"schemaVersion":2,"manifests":[],"annotations":{"x":"y"}}')
    store.ensure_repo("r")
    assert world.path("r/oci-layout").exists()
    assert json.loads(world.path("r/index.json").read_bytes())["annotations"] == {"x": "y"}


def test_view_of_unknown_repository(store: ImageStore) -> None:
    with pytest.raises(NameUnknown):
        store.view("nope")
    with pytest.raises(NameUnknown):
        store.tag_page("nope", None, None)


# -- monolithic blobs ------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_put_blob(world: World, store: ImageStore, algorithm: str) -> None:
    data = os.urandom(3000)
    digest = Digest.of(data, algorithm)
    assert store.put_blob("r", digest, [data[:1000], data[1000:]]) == 3000
    assert world.path(f"r/blobs/{algorithm}/{digest.hex}").read_bytes() == data
    assert store.blob_size("r", digest) == 3000
    assert store.has_blob("r", digest)
    with store.open_blob("r", digest, 2000) as f:
        assert f.read() == data[2000:]
    assert world.files_under("r/.uploads") == []


def test_put_blob_wrong_digest_leaves_nothing(world: World, store: ImageStore) -> None:
    wrong = Digest.of(b"something else")
    with pytest.raises(DigestInvalid):
        store.put_blob("r", wrong, [b"actual content"])
    assert world.files_under("r/blobs") == []
    assert world.files_under("r/.uploads") == []
    assert not store.has_blob("r", wrong)
    assert not store.has_blob("r", Digest.of(b"actual content"))
    assert store.index.locations(str(wrong)) == []


def test_put_blob_interrupted_leaves_nothing(world: World, store: ImageStore) -> None:
    with pytest.raises(RuntimeError):
        store.put_blob("r", Digest.of(b"abcdef"), failing(b"abc"))
    assert world.files_under("r/blobs") == []
    assert world.files_under("r/.uploads") == []


def test_put_blob_again_is_harmless(world: World, store: ImageStore) -> None:
    digest = Digest.of(b"data")
    store.put_blob("r", digest, [b"data"])
    store.put_blob("r", digest, [b"data"])
    assert world.path(blob_file("r", digest)).read_bytes() == b"data"
    assert world.files_under("r/.uploads") == []


def test_unknown_blob(store: ImageStore) -> None:
    store.ensure_repo("r")
    digest = Digest.of(b"missing")
    with pytest.raises(BlobUnknown):
        store.blob_size("r", digest)
    with pytest.raises(BlobUnknown):
        store.open_blob("r", digest)
    assert not store.has_blob("r", digest)
    assert not store.has_blob("other", digest)


# -- chunked uploads -------------------------------------------------------------------


def test_chunked_upload(world: World, store: ImageStore) -> None:
    session = store.new_upload("r")
    assert store.upload_size("r", session) == 0
    assert store.append_upload("r", session, [b"hello "], 0) == 6
    assert store.append_upload("r", session, [b"wor"], None) == 9
    assert store.upload_size("r", session) == 9
    digest = Digest.of(b"hello world")
    assert store.finish_upload("r", session, digest, [b"ld"], 9) == 11
    assert world.path(blob_file("r", digest)).read_bytes() == b"hello world"
    assert world.files_under("r/.uploads") == []
    with pytest.raises(BlobUploadUnknown):
        store.upload_size("r", session)


@pytest.mark.parametrize(("size_before", "start", "expected_range"), [
    (0, 1, "0-0"),
    (0, 5, "0-0"),
    (5, 0, "0-4"),
    (5, 4, "0-4"),
    (5, 6, "0-4"),
])
def test_chunk_that_does_not_continue(store: ImageStore, size_before: int, start: int,
                                      expected_range: str) -> None:
    session = store.new_upload("r")
    if size_before:
        store.append_upload("r", session, [b"x" * size_before], 0)
    with pytest.raises(RangeInvalid) as info:
        store.append_upload("r", session, [b"more"], start)
    assert info.value.http_status == 416
    assert info.value.code == "BLOB_UPLOAD_INVALID"
    assert info.value.headers == {"Range": expected_range}
    assert store.upload_size("r", session) == size_before


def test_finish_with_wrong_start_keeps_the_upload(store: ImageStore) -> None:
    session = store.new_upload("r")
    store.append_upload("r", session, [b"abc"], 0)
    with pytest.raises(RangeInvalid):
        store.finish_upload("r", session, Digest.of(b"abcdef"), [b"def"], 0)
    assert store.upload_size("r", session) == 3
    assert store.finish_upload("r", session, Digest.of(b"abcdef"), [b"def"], 3) == 6


def test_interrupted_chunk_leaves_the_upload_resumable(store: ImageStore) -> None:
    session = store.new_upload("r")
    store.append_upload("r", session, [b"abc"], 0)
    with pytest.raises(RuntimeError):
        store.append_upload("r", session, failing(b"XYZ" * 1000), 3)
    assert store.upload_size("r", session) == 3
    store.append_upload("r", session, [b"def"], 3)
    assert store.finish_upload("r", session, Digest.of(b"abcdef"), None, None) == 6


def test_finish_upload_sha512(world: World, store: ImageStore) -> None:
    data = b"sha512 content " * 100
    digest = Digest.of(data, "sha512")
    session = store.new_upload("r")
    store.append_upload("r", session, [data[:700]], 0)
    assert store.finish_upload("r", session, digest, [data[700:]], 700) == len(data)
    assert world.path(f"r/blobs/sha512/{digest.hex}").read_bytes() == data
    assert world.files_under("r/blobs/sha256") == []


def test_finish_upload_sha512_rejects_a_sha256_match(store: ImageStore) -> None:
    session = store.new_upload("r")
    store.append_upload("r", session, [b"data"], 0)
    wrong = Digest("sha512", Digest.of(b"data").hex * 2)
    with pytest.raises(DigestInvalid):
        store.finish_upload("r", session, wrong, None, None)


def test_finish_upload_wrong_digest_keeps_the_session_for_a_retry(world: World, store: ImageStore) -> None:
    session = store.new_upload("r")
    store.append_upload("r", session, [b"content"], 0)
    with pytest.raises(DigestInvalid):
        store.finish_upload("r", session, Digest.of(b"other"), None, None)
    assert store.upload_size("r", session) == 7
    assert world.files_under("r/blobs") == []
    assert store.finish_upload("r", session, Digest.of(b"content"), None, None) == 7
    assert store.has_blob("r", Digest.of(b"content"))


def test_finish_empty_upload(store: ImageStore) -> None:
    session = store.new_upload("r")
    assert store.finish_upload("r", session, Digest.of(b""), None, None) == 0
    assert store.blob_size("r", Digest.of(b"")) == 0


class CountingReads:
    """Wraps a store's driver to count full reads of upload files."""

    def __init__(self, store: ImageStore) -> None:
        self.count = 0
        original = store.driver.iter_chunks

        def iter_chunks(path: str, *args: Any) -> Iterator[bytes]:
            if f"/{layout.UPLOADS_DIR}/" in path:
                self.count += 1
            return original(path, *args)

        store.driver.iter_chunks = iter_chunks  # type: ignore[method-assign]


def test_hash_state_is_reused_within_a_process(store: ImageStore) -> None:
    reads = CountingReads(store)
    session = store.new_upload("r")
    store.append_upload("r", session, [b"part one, "], 0)
    store.append_upload("r", session, [b"part two"], None)
    store.finish_upload("r", session, Digest.of(b"part one, part two, end"), [b", end"], None)
    assert reads.count == 0


def test_other_worker_finishing_rereads(world: World, store: ImageStore) -> None:
    other = world.store()
    reads = CountingReads(other)
    session = store.new_upload("r")
    store.append_upload("r", session, [b"from one"], 0)
    with pytest.raises(DigestInvalid):
        other.finish_upload("r", session, Digest.of(b"from one!"), None, None)
    assert other.finish_upload("r", session, Digest.of(b"from one + two"), [b" + two"], 8) == 14
    assert reads.count == 2
    assert store.has_blob("r", Digest.of(b"from one + two"))


def test_chunks_spread_over_workers_verify(store: ImageStore, world: World) -> None:
    other = world.store()
    session = store.new_upload("r")
    store.append_upload("r", session, [b"aaa"], 0)
    other.append_upload("r", session, [b"bbb"], 3)  # the first worker's hash state is now stale
    with pytest.raises(DigestInvalid):
        store.finish_upload("r", session, Digest.of(b"aaa"), None, None)
    with pytest.raises(DigestInvalid):
        store.finish_upload("r", session, Digest.of(b"aaaccc"), None, None)
    store.append_upload("r", session, [b"ccc"], 6)
    assert store.finish_upload("r", session, Digest.of(b"aaabbbccc"), None, None) == 9


def test_upload_sessions_unknown_and_malformed(store: ImageStore) -> None:
    store.ensure_repo("r")
    for session in ["0" * 32, "../../etc/passwd", "", "A" * 32, "0" * 33]:
        with pytest.raises(BlobUploadUnknown):
            store.upload_size("r", session)
        with pytest.raises(BlobUploadUnknown):
            store.append_upload("r", session, [b"x"], None)
        with pytest.raises(BlobUploadUnknown):
            store.finish_upload("r", session, Digest.of(b"x"), None, None)
        with pytest.raises(BlobUploadUnknown):
            store.cancel_upload("r", session)


def test_session_belongs_to_its_repository(store: ImageStore) -> None:
    session = store.new_upload("r")
    store.ensure_repo("s")
    with pytest.raises(BlobUploadUnknown):
        store.upload_size("s", session)


def test_cancel_upload(world: World, store: ImageStore) -> None:
    session = store.new_upload("r")
    store.append_upload("r", session, [b"abc"], 0)
    store.cancel_upload("r", session)
    assert world.files_under("r/.uploads") == []
    with pytest.raises(BlobUploadUnknown):
        store.cancel_upload("r", session)
    with pytest.raises(BlobUploadUnknown):
        store.append_upload("r", session, [b"x"], None)


def test_sessions_survive_a_new_store(world: World, store: ImageStore) -> None:
    session = store.new_upload("r")
    store.append_upload("r", session, [b"abc"], 0)
    assert world.store().upload_size("r", session) == 3


# -- dedupe ----------------------------------------------------------------------------


def test_dedupe_links_identical_blobs(world: World, store: ImageStore) -> None:
    digest = Digest.of(b"shared layer")
    store.put_blob("a", digest, [b"shared layer"])
    session = store.new_upload("b")
    store.finish_upload("b", session, digest, [b"shared layer"], 0)
    store.put_blob("c", digest, [b"shared layer"])
    inodes = {inode(world, blob_file(repo, digest)) for repo in "abc"}
    assert len(inodes) == 1
    assert sorted(store.index.locations(str(digest))) == [blob_file(r, digest) for r in "abc"]


def test_dedupe_off_keeps_separate_copies(world: World) -> None:
    store = world.store(dedupe=False)
    digest = Digest.of(b"shared layer")
    store.put_blob("a", digest, [b"shared layer"])
    store.put_blob("b", digest, [b"shared layer"])
    assert inode(world, blob_file("a", digest)) != inode(world, blob_file("b", digest))
    assert store.index.locations(str(digest)) == []


def test_dedupe_skips_a_stale_location(world: World, store: ImageStore) -> None:
    digest = Digest.of(b"data")
    store.put_blob("a", digest, [b"data"])
    os.unlink(world.path(blob_file("a", digest)))
    store.put_blob("b", digest, [b"data"])
    assert world.path(blob_file("b", digest)).read_bytes() == b"data"
    assert store.index.locations(str(digest)) == [blob_file("b", digest)]


# -- deleting blobs --------------------------------------------------------------------


def test_delete_blob_refused_while_referenced(store: ImageStore) -> None:
    manifest = image(store, "r", "one")
    digest = push(store, "r", manifest, "v1")
    assert manifest.config is not None
    for referenced in (manifest.config.digest, manifest.layers[0].digest, digest):
        with pytest.raises(BlobInUse) as info:
            store.delete_blob("r", referenced)
        assert info.value.http_status == 405
        assert store.has_blob("r", referenced)


def test_delete_blob_refused_for_a_child_of_an_index(store: ImageStore) -> None:
    child = image(store, "r", "child")
    push(store, "r", child)
    push(store, "r", index_of(store, "r", child), "multi")
    with pytest.raises(BlobInUse):
        store.delete_blob("r", child.digest())


def test_delete_blob_unreferenced_and_other_copy_survives(world: World, store: ImageStore) -> None:
    digest = Digest.of(b"loose")
    store.put_blob("a", digest, [b"loose"])
    store.put_blob("b", digest, [b"loose"])
    store.delete_blob("a", digest)
    assert not store.has_blob("a", digest)
    assert world.path(blob_file("b", digest)).read_bytes() == b"loose"
    assert store.index.locations(str(digest)) == [blob_file("b", digest)]
    with pytest.raises(BlobUnknown):
        store.delete_blob("a", digest)


def test_delete_blob_in_unknown_repository(store: ImageStore) -> None:
    with pytest.raises(NameUnknown):
        store.delete_blob("nope", Digest.of(b"x"))


# -- mounting --------------------------------------------------------------------------


def test_mount_from_another_repository(world: World, store: ImageStore) -> None:
    digest = Digest.of(b"mounted")
    store.put_blob("a", digest, [b"mounted"])
    assert store.mount_blob("b", digest, "a") is True
    assert store.repo_exists("b")
    assert world.path(blob_file("b", digest)).read_bytes() == b"mounted"
    assert inode(world, blob_file("a", digest)) == inode(world, blob_file("b", digest))
    assert store.mount_blob("b", digest, "a") is True


def test_mount_from_the_dedupe_index(world: World, store: ImageStore) -> None:
    digest = Digest.of(b"known")
    store.put_blob("a", digest, [b"known"])
    assert store.mount_blob("b", digest, None) is True
    assert inode(world, blob_file("a", digest)) == inode(world, blob_file("b", digest))
    assert blob_file("b", digest) in store.index.locations(str(digest))


def test_mount_without_dedupe_copies(world: World) -> None:
    store = world.store(dedupe=False)
    digest = Digest.of(b"copied")
    store.put_blob("a", digest, [b"copied"])
    assert store.mount_blob("b", digest, None) is False
    assert store.mount_blob("b", digest, "a") is True
    assert world.path(blob_file("b", digest)).read_bytes() == b"copied"
    assert inode(world, blob_file("a", digest)) != inode(world, blob_file("b", digest))


@pytest.mark.parametrize("from_repo", ["empty", "missing", "../a", "a/../a", "A"])
def test_mount_fails_without_a_source(world: World, store: ImageStore, from_repo: str) -> None:
    digest = Digest.of(b"somewhere")
    store.put_blob("a", digest, [b"somewhere"])
    store.ensure_repo("empty")
    assert store.mount_blob("b", digest, from_repo) is False
    assert not world.path(blob_file("b", digest)).exists()


def test_mount_unknown_digest_from_index(store: ImageStore) -> None:
    assert store.mount_blob("b", Digest.of(b"never"), None) is False


# -- manifests -------------------------------------------------------------------------


def test_put_manifest_with_tag(world: World, store: ImageStore) -> None:
    manifest = image(store, "r", "one")
    digest = manifest.digest()
    assert store.put_manifest("r", manifest, digest, ["v1"]) is False  # blobs created the repo
    assert store.put_manifest("new", parse_manifest(manifest.raw, mt.OCI_MANIFEST, False), digest, []) is True
    assert entries(world, "r") == [{**descriptor(manifest), "annotations": {mt.TAG_ANNOTATION: "v1"}}]
    assert world.path(blob_file("r", digest)).read_bytes() == manifest.raw
    assert store.get_manifest("r", "v1") == (manifest.raw, digest, mt.OCI_MANIFEST)
    assert store.get_manifest("r", str(digest)) == (manifest.raw, digest, mt.OCI_MANIFEST)
    assert store.resolve("r", "v1") == (digest, mt.OCI_MANIFEST)
    assert store.tag_page("r", None, None) == (["v1"], False)


def test_blob_digest_is_no_manifest(store: ImageStore) -> None:
    manifest = image(store, "r", "one")
    push(store, "r", manifest, "v1")
    assert manifest.config is not None
    with pytest.raises(ManifestUnknown):
        store.get_manifest("r", str(manifest.config.digest))
    with pytest.raises(ManifestUnknown):
        store.delete_manifest("r", str(manifest.config.digest))
    assert store.has_blob("r", manifest.config.digest)


def test_put_manifest_sha512(world: World, store: ImageStore) -> None:
    manifest = image(store, "r", "one")
    digest = manifest.digest("sha512")
    store.put_manifest("r", manifest, digest, ["v1"])
    assert world.path(f"r/blobs/sha512/{digest.hex}").read_bytes() == manifest.raw
    assert store.get_manifest("r", "v1")[1] == digest


def test_put_manifest_records_artifact_type(world: World, store: ImageStore) -> None:
    manifest = image(store, "r", "one", artifactType="application/x-art")
    push(store, "r", manifest)
    assert entries(world, "r") == [{**descriptor(manifest), "artifactType": "application/x-art"}]


def test_put_manifest_untagged(world: World, store: ImageStore) -> None:
    manifest = image(store, "r", "one")
    digest = push(store, "r", manifest)
    assert entries(world, "r") == [descriptor(manifest)]
    assert store.tag_page("r", None, None) == ([], False)
    assert store.get_manifest("r", str(digest))[0] == manifest.raw
    with pytest.raises(ManifestUnknown):
        store.get_manifest("r", "latest")


def test_put_manifest_several_tags(world: World, store: ImageStore) -> None:
    manifest = image(store, "r", "one")
    push(store, "r", manifest, "a", "b", "c")
    assert [layout.tag_of(e) for e in entries(world, "r")] == ["a", "b", "c"]
    assert store.tag_page("r", "a", 1) == (["b"], True)


def test_tagging_an_untagged_manifest_replaces_its_entry(world: World, store: ImageStore) -> None:
    manifest = image(store, "r", "one")
    push(store, "r", manifest)
    push(store, "r", manifest, "v1")
    assert entries(world, "r") == [{**descriptor(manifest), "annotations": {mt.TAG_ANNOTATION: "v1"}}]


def test_tag_move_keeps_the_old_manifest_reachable(world: World, store: ImageStore) -> None:
    old, new = image(store, "r", "old"), image(store, "r", "new")
    old_digest = push(store, "r", old, "latest")
    new_digest = push(store, "r", new, "latest")
    assert store.resolve("r", "latest")[0] == new_digest
    assert store.get_manifest("r", str(old_digest))[0] == old.raw
    assert sorted(map(json.dumps, entries(world, "r"))) == sorted(map(json.dumps, [
        descriptor(old), {**descriptor(new), "annotations": {mt.TAG_ANNOTATION: "latest"}},
    ]))


def test_tag_move_when_the_old_manifest_keeps_another_tag(world: World, store: ImageStore) -> None:
    old, new = image(store, "r", "old"), image(store, "r", "new")
    push(store, "r", old, "latest", "v1")
    push(store, "r", new, "latest")
    assert {layout.tag_of(e): e["digest"] for e in entries(world, "r")} == {
        "v1": str(old.digest()), "latest": str(new.digest())}


@pytest.mark.parametrize("tags", [["v1"], ["v1", "v2"], []])
def test_identical_push_leaves_index_json_untouched(world: World, store: ImageStore, tags: list[str]) -> None:
    manifest = image(store, "r", "one")
    push(store, "r", manifest, *tags)
    index_json = world.path("r/index.json")
    before, identity = index_json.read_bytes(), index_json.stat().st_ino
    push(store, "r", manifest, *tags)
    push(store, "r", manifest)  # untagged re-push of a tagged manifest changes nothing either
    assert index_json.read_bytes() == before
    assert index_json.stat().st_ino == identity


def test_index_json_is_compact(world: World, store: ImageStore) -> None:
    push(store, "r", image(store, "r", "one"), "v1")
    raw = world.path("r/index.json").read_bytes()
    assert b" " not in raw and b"\n" not in raw


def test_index_json_keeps_foreign_fields(world: World, store: ImageStore) -> None:
    store.ensure_repo("r")
    doc = {"schemaVersion": 2, "manifests": [], "annotations": {"keep": "me"}}
    world.path("r/index.json").write_bytes(json.dumps(doc).encode())
    push(store, "r", image(store, "r", "one"), "v1")
    assert json.loads(world.path("r/index.json").read_bytes())["annotations"] == {"keep": "me"}


# -- deleting manifests ----------------------------------------------------------------


def test_delete_by_tag_keeps_an_untagged_entry(world: World, store: ImageStore) -> None:
    manifest = image(store, "r", "one")
    digest = push(store, "r", manifest, "v1")
    assert store.delete_manifest("r", "v1") == digest
    assert entries(world, "r") == [descriptor(manifest)]
    assert store.get_manifest("r", str(digest))[0] == manifest.raw
    with pytest.raises(ManifestUnknown):
        store.resolve("r", "v1")
    with pytest.raises(ManifestUnknown):
        store.delete_manifest("r", "v1")


def test_delete_by_tag_with_another_tag_left(world: World, store: ImageStore) -> None:
    manifest = image(store, "r", "one")
    push(store, "r", manifest, "v1", "v2")
    store.delete_manifest("r", "v1")
    assert entries(world, "r") == [{**descriptor(manifest), "annotations": {mt.TAG_ANNOTATION: "v2"}}]


def test_delete_by_digest_removes_entries_and_blob(world: World, store: ImageStore) -> None:
    manifest, other = image(store, "r", "one"), image(store, "r", "two")
    digest = push(store, "r", manifest, "v1", "v2")
    push(store, "r", other, "keep")
    assert store.delete_manifest("r", str(digest)) == digest
    assert [e["digest"] for e in entries(world, "r")] == [str(other.digest())]
    assert not world.path(blob_file("r", digest)).exists()
    assert store.tag_page("r", None, None) == (["keep"], False)
    with pytest.raises(ManifestUnknown):
        store.get_manifest("r", str(digest))
    with pytest.raises(ManifestUnknown):
        store.delete_manifest("r", str(digest))
    assert manifest.config is not None
    store.delete_blob("r", manifest.config.digest)  # no longer referenced


def test_delete_unknown_digest(store: ImageStore) -> None:
    store.ensure_repo("r")
    with pytest.raises(ManifestUnknown):
        store.delete_manifest("r", str(Digest.of(b"unknown")))


@pytest.mark.parametrize("child_is_top_level", [True, False])
def test_delete_of_an_index_child_is_denied(world: World, store: ImageStore,
                                            child_is_top_level: bool) -> None:
    child = image(store, "r", "child")
    if child_is_top_level:
        push(store, "r", child)
    else:
        store.put_blob("r", child.digest(), [child.raw])
    push(store, "r", index_of(store, "r", child), "multi")
    before = world.path("r/index.json").read_bytes()
    with pytest.raises(Denied) as info:
        store.delete_manifest("r", str(child.digest()))
    assert info.value.http_status == 405
    assert world.path("r/index.json").read_bytes() == before
    assert world.path(blob_file("r", child.digest())).exists()
    assert store.get_manifest("r", str(child.digest()))[0] == child.raw


def test_delete_an_index_then_its_child(world: World, store: ImageStore) -> None:
    child = image(store, "r", "child")
    push(store, "r", child)
    index = index_of(store, "r", child)
    push(store, "r", index, "multi")
    store.delete_manifest("r", str(index.digest()))
    store.delete_manifest("r", str(child.digest()))
    assert entries(world, "r") == []


def test_index_manifest_media_type(store: ImageStore) -> None:
    child = image(store, "r", "child")
    push(store, "r", child)
    index = index_of(store, "r", child)
    push(store, "r", index, "multi")
    assert store.resolve("r", "multi") == (index.digest(), mt.OCI_INDEX)
    assert store.resolve("r", str(child.digest())) == (child.digest(), mt.OCI_MANIFEST)


# -- referrers -------------------------------------------------------------------------


def test_referrers(store: ImageStore) -> None:
    target = image(store, "r", "target")
    target_digest = push(store, "r", target, "v1")
    sig = image(store, "r", "sig", subject=descriptor(target), artifactType="application/x-sig",
                annotations={"who": "me"})
    sig_digest = push(store, "r", sig)
    assert store.referrers("r", target_digest) == [
        {**descriptor(sig), "artifactType": "application/x-sig", "annotations": {"who": "me"}}]
    store.delete_manifest("r", str(sig_digest))
    assert store.referrers("r", target_digest) == []
    assert store.referrers("nope", target_digest) == []


def test_referrer_pushed_before_its_subject(store: ImageStore) -> None:
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"later")), "size": 5}
    sig = image(store, "r", "sig", subject=subject)
    push(store, "r", sig)
    assert [d["digest"] for d in store.referrers("r", Digest.of(b"later"))] == [str(sig.digest())]


# -- scanning and reconciling ----------------------------------------------------------


def write_layout(root: Path, repo: str, manifests: Iterable[dict[str, Any]] = ()) -> None:
    directory = root / repo
    (directory / "blobs").mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": list(manifests)}))


def test_scan_finds_nested_repositories(world: World, store: ImageStore) -> None:
    store.ensure_repo("a")
    store.ensure_repo("a/b")
    store.ensure_repo("x/y/z")
    push(store, "a", image(store, "a", "one"), "v1")
    store.new_upload("a")
    for hidden in ["_zotpy/r", "a/.uploads/r", "a/blobs/r", "a/blobs/sha256/r", ".hidden/r", "_other",
                   "UPPER", "a/b/.sync/r", "a/blobs"]:
        write_layout(world.root, hidden)
    world.path("loose-file").write_text("x")
    world.path("not-a-repo/child").mkdir(parents=True)
    assert sorted(store.scan()) == ["a", "a/b", "x/y/z"]


def test_scan_needs_both_layout_files(world: World, store: ImageStore) -> None:
    write_layout(world.root, "full")
    write_layout(world.root, "no-index")
    os.unlink(world.path("no-index/index.json"))
    write_layout(world.root, "no-layout")
    os.unlink(world.path("no-layout/oci-layout"))
    assert list(store.scan()) == ["full"]


def test_scan_of_an_empty_root(store: ImageStore) -> None:
    assert list(store.scan()) == []


def test_reconcile_fills_the_index(world: World, store: ImageStore) -> None:
    push(store, "a", image(store, "a", "one"), "v1")
    store.put_blob("a/b", Digest.of(b"loose"), [b"loose"])
    fresh = world.store(db="fresh.db")
    assert fresh.list_repositories(None, None) == []
    assert fresh.reconcile() == 2
    assert fresh.list_repositories(None, None) == ["a", "a/b"]
    assert fresh.index.locations(str(Digest.of(b"loose"))) == [blob_file("a/b", Digest.of(b"loose"))]
    assert fresh.mount_blob("c", Digest.of(b"loose"), None) is True


def test_reconcile_forgets_what_is_gone(world: World, store: ImageStore) -> None:
    store.put_blob("a", Digest.of(b"x"), [b"x"])
    store.put_blob("gone", Digest.of(b"y"), [b"y"])
    shutil.rmtree(world.path("gone"))
    assert store.reconcile() == 1
    assert store.list_repositories(None, None) == ["a"]
    assert store.index.locations(str(Digest.of(b"y"))) == []


def test_reconcile_without_dedupe_records_no_locations(world: World) -> None:
    store = world.store(dedupe=False)
    store.put_blob("a", Digest.of(b"x"), [b"x"])
    assert store.reconcile() == 1
    assert store.index.locations(str(Digest.of(b"x"))) == []


def test_hand_written_layout_is_found(world: World, store: ImageStore) -> None:
    config, layer = b'{"os":"linux"}', b"layer"
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(config)), "size": len(config)},
            "layers": [{"mediaType": LAYER_TYPE, "digest": str(Digest.of(layer)), "size": len(layer)}]}
    raw = json.dumps(body, indent=2).encode()
    write_layout(world.root, "hand/made", [{"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(raw)),
                                            "size": len(raw), "annotations": {mt.TAG_ANNOTATION: "v1"}}])
    for data in (config, layer, raw):
        path = world.path(f"hand/made/blobs/sha256/{Digest.of(data).hex}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert store.reconcile() == 1
    assert store.list_repositories(None, None) == ["hand/made"]
    assert store.get_manifest("hand/made", "v1") == (raw, Digest.of(raw), mt.OCI_MANIFEST)
    assert store.blob_size("hand/made", Digest.of(layer)) == len(layer)
    with pytest.raises(BlobInUse):
        store.delete_blob("hand/made", Digest.of(layer))


def test_unreadable_index_json_is_an_empty_view(world: World, store: ImageStore) -> None:
    write_layout(world.root, "broken")
    world.path("broken/index.json").write_text("{not json")
    assert store.tag_page("broken", None, None) == ([], False)


# -- views across workers --------------------------------------------------------------


def test_view_sees_changes_made_by_another_worker(world: World, store: ImageStore) -> None:
    other = world.store()
    one, two = image(store, "r", "one"), image(store, "r", "two")
    push(store, "r", one, "v1")
    assert store.tag_page("r", None, None) == (["v1"], False)
    push(other, "r", two, "v2")
    assert store.tag_page("r", None, None) == (["v1", "v2"], False)
    other.delete_manifest("r", "v1")
    assert store.tag_page("r", None, None) == (["v2"], False)
    # Same tags, same size of index.json: only the identity tells the versions apart.
    for i in range(20):
        writer, target = (other, one) if i % 2 else (store, two)
        push(writer, "r", target, "v2")
        assert store.resolve("r", "v2")[0] == target.digest()
        assert other.resolve("r", "v2")[0] == target.digest()


def test_view_is_cached_while_index_json_is_unchanged(world: World, store: ImageStore) -> None:
    push(store, "r", image(store, "r", "one"), "v1")
    past = time.time() - 10
    os.utime(world.path("r/index.json"), (past, past))
    assert store.view("r") is store.view("r")


def test_a_freshly_written_index_json_is_not_cached(world: World, store: ImageStore) -> None:
    # Within one coarse file-time tick a same-size rewrite could reuse the inode: no caching then.
    push(store, "r", image(store, "r", "one"), "v1")
    assert store.view("r") is not store.view("r")


def test_view_after_the_repository_is_removed(world: World, store: ImageStore) -> None:
    store.ensure_repo("r")
    store.view("r")
    os.unlink(world.path("r/index.json"))
    with pytest.raises(NameUnknown):
        store.view("r")


def test_two_stores_pushing_the_same_blob(world: World, store: ImageStore) -> None:
    other = world.store()
    digest = Digest.of(b"both")
    store.put_blob("a", digest, [b"both"])
    other.put_blob("b", digest, [b"both"])
    assert inode(world, blob_file("a", digest)) == inode(world, blob_file("b", digest))


def test_blob_stat_ignores_directories(world: World, store: ImageStore) -> None:
    digest = Digest.of(b"dir")
    world.path(blob_file("r", digest)).mkdir(parents=True)
    with pytest.raises(BlobUnknown):
        store.blob_size("r", digest)


# -- group commit: pushes waiting for one repository's lock share one index.json rewrite ----------


def test_concurrent_pushes_to_one_repository_all_land(world: World, store: ImageStore) -> None:
    manifests = [image(store, "r", f"m{i}") for i in range(24)]
    writes: list[int] = []
    real_write = store.driver.write_atomic

    def counting_write(path: str, chunks: Any) -> int:
        if path == "r/index.json":
            writes.append(1)
        return real_write(path, chunks)

    store.driver.write_atomic = counting_write  # type: ignore[method-assign]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: push(store, "r", manifests[i], f"t{i}"), range(24)))
    doc = json.loads(world.path("r/index.json").read_bytes())
    tags = {e["annotations"][mt.TAG_ANNOTATION]: e["digest"] for e in doc["manifests"]}
    assert tags == {f"t{i}": str(m.digest()) for i, m in enumerate(manifests)}
    assert 1 <= len(writes) <= 24


def test_a_failing_hook_in_a_batch_undoes_only_its_own_push(world: World, store: ImageStore) -> None:
    good, bad = image(store, "r", "good"), image(store, "r", "bad")
    store.ensure_repo("r")
    gate = threading.Event()
    results: dict[str, BaseException | None] = {}

    def hook_for(name: str) -> Any:
        def hook() -> None:
            if name == "bad":
                raise RuntimeError("metadata write failed")
        return hook

    def run(name: str, manifest: Manifest) -> None:
        gate.wait()
        try:
            store.put_manifest("r", manifest, manifest.digest(), [name], on_commit=hook_for(name))
            results[name] = None
        except BaseException as exc:  # the request's own error
            results[name] = exc

    # Hold the repository lock so both pushes queue up and are applied as one batch.
    with store.locks.lock(_repo_lock("r")):
        threads = [threading.Thread(target=run, args=(n, m)) for n, m in (("good", good), ("bad", bad))]
        for thread in threads:
            thread.start()
        gate.set()
        time.sleep(0.2)
    for thread in threads:
        thread.join(10)
    assert results["good"] is None
    assert isinstance(results["bad"], RuntimeError)
    assert store.resolve("r", "good")[0] == good.digest()
    with pytest.raises(ManifestUnknown):
        store.resolve("r", "bad")
    assert not store.has_blob("r", bad.digest())


@pytest.mark.parametrize("other_writer", [False, True], ids=["alone", "with-another-writer"])
def test_appending_new_tags_matches_rewriting_the_document(world: World, store: ImageStore,
                                                            other_writer: bool) -> None:
    """The append fast path must write exactly what parsing and re-encoding would, batch or not,
    also when another process changed index.json in between (appended to it or rewrote it)."""
    import random

    from zotpy.storage.imagestore import _PendingPut, _record

    rng = random.Random(7)
    manifests = [image(store, "r", f"m{i}") for i in range(12)]
    fast = layout.EMPTY_INDEX
    slow = layout.decode_index(fast)
    for step in range(200):
        batch = []
        for k in range(rng.randrange(1, 4)):
            manifest = rng.choice(manifests)
            tags = rng.choice([[], [f"t{rng.randrange(30)}"], [f"t{rng.randrange(30)}", f"n{step}-{k}"]])
            batch.append(_PendingPut(manifest, manifest.digest(), tags, None, False))
            _record(slow["manifests"], manifest, manifest.digest(), tags)
        fast = store._apply_all("r", fast, batch)
        assert json.loads(fast) == slow, f"diverged at step {step}"
        if other_writer and step % 7 == 3:
            # Another worker's push, appended (or, every other time, the whole file re-encoded).
            manifest = rng.choice(manifests)
            _record(slow["manifests"], manifest, manifest.digest(), [f"o{step}"])
            fast = layout.encode_index(slow) if step % 2 else store._apply_all(
                "other-process", fast, [_PendingPut(manifest, manifest.digest(), [f"o{step}"], None, False)])
    assert fast == layout.encode_index(slow)
