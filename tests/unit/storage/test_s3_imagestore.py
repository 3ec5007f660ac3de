"""The image store over the S3 driver (moto's server): uploads taken over by another worker, dedupe
(placeholders: see test_s3_dedupe), catalog reconciliation from the bucket, also while another node
pushes, and removal of an emptied repository."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.moto_s3 import MotoS3
from zotpy.errors import BlobUnknown, DigestInvalid
from zotpy.locks import LockSet
from zotpy.meta.db import open_database
from zotpy.meta.storeindex import StoreIndex
from zotpy.oci.digest import Digest
from zotpy.storage.drivers.s3 import S3Driver
from zotpy.storage.drivers.s3_settings import MIN_PART_SIZE, parse_settings
from zotpy.storage.imagestore import ImageStore

MiB = 1024 * 1024


def digest_of(data: bytes) -> Digest:
    return Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())


@pytest.fixture
def stores(moto_s3: MotoS3, tmp_path: Path) -> Iterator[list[ImageStore]]:
    """Two stores over one bucket, index and lock directory, as two worker processes see them."""
    bucket = moto_s3.new_bucket()
    settings = parse_settings(moto_s3.driver_settings(bucket, "/zot", chunksize=MIN_PART_SIZE))
    index = StoreIndex(open_database(str(tmp_path / "zotpy.db")))
    locks = LockSet(str(tmp_path / "locks"))
    yield [ImageStore(S3Driver(settings), index, locks) for _ in range(2)]


def test_upload_continued_by_another_worker(stores: list[ImageStore]) -> None:
    first, second = stores
    data = os.urandom(12 * MiB + 7)
    session = first.new_upload("r")
    assert first.append_upload("r", session, [data[:4 * MiB]], 0) == 4 * MiB
    assert second.append_upload("r", session, [data[4 * MiB:11 * MiB]], 4 * MiB) == 11 * MiB
    assert first.upload_size("r", session) == 11 * MiB
    # The worker finishing it holds no hash state for this size: it re-reads (and seals) the upload.
    with pytest.raises(DigestInvalid):
        first.finish_upload("r", session, digest_of(b"other"), [data[11 * MiB:]], 11 * MiB)
    assert first.finish_upload("r", session, digest_of(data), None, None) == len(data)
    with second.open_blob("r", digest_of(data), 5 * MiB) as f:
        assert f.read() == data[5 * MiB:]


def test_dedupe_and_deleting_one_keeps_the_others(stores: list[ImageStore]) -> None:
    store = stores[0]
    data = os.urandom(MiB)
    digest = digest_of(data)
    store.put_blob("a", digest, [data])
    assert store.mount_blob("b", digest, None)  # found through the digest index
    assert store.put_blob("c", digest, iter([data])) == len(data)
    assert sorted(store.index.locations(str(digest))) == [f"{r}/blobs/sha256/{digest.hex}" for r in "abc"]
    store.delete_blob("a", digest)
    with pytest.raises(BlobUnknown):
        store.blob_size("a", digest)
    assert store.read_blob("b", digest) == data
    assert store.read_blob("c", digest) == data


def test_reconcile_finds_repositories_in_the_bucket(stores: list[ImageStore], tmp_path: Path) -> None:
    for repo in ("x", "team/app", "team/app/nested"):
        stores[0].put_blob(repo, digest_of(repo.encode()), [repo.encode()])
    fresh = StoreIndex(open_database(str(tmp_path / "fresh.db")))
    store = ImageStore(stores[0].driver, fresh, stores[0].locks)
    assert store.reconcile() == 3
    assert store.list_repositories(None, None) == ["team/app", "team/app/nested", "x"]
    assert store.index.locations(str(digest_of(b"x"))) == [f"x/blobs/sha256/{digest_of(b'x').hex}"]


def test_reconcile_keeps_a_repository_created_behind_its_walk(stores: list[ImageStore]) -> None:
    """A node restarting while another takes pushes: what the other records during the walk stays."""
    restarting, other = stores
    restarting.put_blob("a", digest_of(b"a"), [b"a"])
    walk = restarting.scan

    def slow_walk() -> Iterator[str]:
        yield from walk()
        other.put_blob("late", digest_of(b"late"), [b"late"])  # after the walk went past it

    restarting.scan = slow_walk  # type: ignore[method-assign]
    assert restarting.reconcile() == 1
    assert restarting.list_repositories(None, None) == ["a", "late"]
    late = f"late/blobs/sha256/{digest_of(b'late').hex}"
    assert restarting.index.locations(str(digest_of(b"late"))) == [late]


def test_reconcile_forgets_a_repository_removed_behind_the_index(stores: list[ImageStore]) -> None:
    store = stores[0]
    for repo in ("kept", "gone"):
        store.put_blob(repo, digest_of(repo.encode()), [repo.encode()])
    store.driver.delete_tree("gone")
    assert store.reconcile() == 1
    assert store.list_repositories(None, None) == ["kept"]
    assert store.index.locations(str(digest_of(b"gone"))) == []


def test_emptied_repository_is_removed(stores: list[ImageStore]) -> None:
    store = stores[0]
    digest = digest_of(b"gone")
    store.put_blob("r", digest, [b"gone"])
    store.delete_blob("r", digest)
    with store.repo_lock("r"):
        assert store.remove_empty_repository("r", time.time() + 10)
    assert not store.repo_exists("r")
    assert store.driver.list_dir("") == []
