"""GC decisions on small layouts: a real ImageStore (LocalDriver, SQLite StoreIndex, LockSet)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zotpy.locks import LockSet
from zotpy.meta.db import close_if_open, open_database
from zotpy.meta.storeindex import StoreIndex
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import parse_manifest
from zotpy.storage import layout
from zotpy.storage.drivers import LocalDriver
from zotpy.storage.gc import GarbageCollector
from zotpy.storage.imagestore import ImageStore
from zotpy.storage.retention import ManifestStats

HOUR = 3600.0
LAYER = "application/vnd.oci.image.layer.v1.tar"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    index = StoreIndex(open_database(str(tmp_path / "index.db")))
    yield ImageStore(LocalDriver(str(tmp_path / "root")), index, LockSet(str(tmp_path / "locks")))
    close_if_open(index.db)


def put_blob(store: ImageStore, repo: str, data: bytes) -> dict[str, Any]:
    digest = Digest.of(data)
    store.put_blob(repo, digest, [data])
    return {"mediaType": LAYER, "digest": str(digest), "size": len(data)}


def put_image(store: ImageStore, repo: str, layers: list[bytes], tag: str | None = None,
              subject: dict[str, Any] | None = None) -> tuple[str, list[str]]:
    """Push config + layers + manifest; return the manifest digest and its blob digests."""
    config = put_blob(store, repo, json.dumps({"layers": len(layers), "id": os.urandom(4).hex()}).encode())
    config["mediaType"] = mt.OCI_CONFIG
    descriptors = [put_blob(store, repo, data) for data in layers]
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config,
                           "layers": descriptors}
    if subject is not None:
        doc["subject"] = subject
    raw = json.dumps(doc).encode()
    manifest = parse_manifest(raw, mt.OCI_MANIFEST, False)
    digest = Digest.of(raw)
    store.put_manifest(repo, manifest, digest, [tag] if tag else [])
    return str(digest), [config["digest"], *(d["digest"] for d in descriptors)]


def put_index(store: ImageStore, repo: str, children: list[str], tag: str) -> str:
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
           "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": d,
                          "size": store.blob_size(repo, Digest.parse(d))} for d in children]}
    raw = json.dumps(doc).encode()
    digest = Digest.of(raw)
    store.put_manifest(repo, parse_manifest(raw, mt.OCI_INDEX, False), digest, [tag])
    return str(digest)


def later(hours: float = 2) -> Any:
    """A clock this far in the future: everything on disk looks that old."""
    return lambda: time.time() + hours * HOUR


def has(store: ImageStore, repo: str, digest: str) -> bool:
    return store.has_blob(repo, Digest.parse(digest))


def test_untagged_manifest_and_its_own_blobs_go_shared_and_tagged_stay(store: ImageStore) -> None:
    kept, kept_blobs = put_image(store, "app", [b"shared", b"kept-only"], tag="v1")
    gone, gone_blobs = put_image(store, "app", [b"shared", b"gone-only"], tag="v2")
    store.delete_manifest("app", "v2")
    deleted: list[tuple[str, str, str]] = []
    collector = GarbageCollector(store, delay=HOUR, clock=later(),
                                 on_delete=lambda r, d, ref: deleted.append((r, str(d), ref)))
    report = collector.collect("app")
    assert report.manifests == [gone]
    assert deleted == [("app", gone, gone)]
    assert set(report.blobs) == {gone, gone_blobs[0], gone_blobs[2]}
    for digest in (kept, *kept_blobs):
        assert has(store, "app", digest)
    for digest in (gone, gone_blobs[0], gone_blobs[2]):
        assert not has(store, "app", digest)
    assert [e["digest"] for e in store.view("app").entries] == [kept]
    assert store.get_manifest("app", "v1")[1] == Digest.parse(kept)


def test_nothing_younger_than_gc_delay_goes(store: ImageStore) -> None:
    put_image(store, "app", [b"a"], tag="v1")
    orphan = put_blob(store, "app", b"pushed but not yet referenced")["digest"]
    session = store.new_upload("app")
    report = GarbageCollector(store, delay=HOUR).collect("app")
    assert not report
    assert has(store, "app", orphan)
    assert store.upload_size("app", session) == 0


def test_stale_upload_sessions_go(store: ImageStore) -> None:
    put_image(store, "app", [b"a"], tag="v1")
    session = store.new_upload("app")
    report = GarbageCollector(store, delay=HOUR, clock=later()).collect("app")
    assert report.uploads == [session]
    assert session not in store.upload_times("app")


def test_a_fresh_dedupe_link_to_old_content_is_not_old(store: ImageStore, tmp_path: Path) -> None:
    put_image(store, "first", [b"content"], tag="v1")
    digest = put_blob(store, "second", b"content")["digest"]  # linked to the copy in "first"
    old = time.time() - 2 * HOUR
    os.utime(tmp_path / "root" / layout.blob_path("second", Digest.parse(digest)), (old, old))
    put_image(store, "second", [b"other"], tag="v1")
    report = GarbageCollector(store, delay=HOUR).collect("second")
    assert digest not in report.blobs
    assert has(store, "second", digest)


def test_children_of_an_index_are_not_untagged_images(store: ImageStore) -> None:
    child, child_blobs = put_image(store, "multi", [b"amd64"])
    index = put_index(store, "multi", [child], tag="latest")
    report = GarbageCollector(store, delay=HOUR, clock=later()).collect("multi")
    assert not report.manifests and not report.blobs
    for digest in (index, child, *child_blobs):
        assert has(store, "multi", digest)


def test_referrers_stay_by_default_and_go_with_delete_referrers_when_subject_is_gone(
        store: ImageStore) -> None:
    subject, _ = put_image(store, "app", [b"base"], tag="v1")
    descriptor = {"mediaType": mt.OCI_MANIFEST, "digest": subject,
                  "size": store.blob_size("app", Digest.parse(subject))}
    referrer, _ = put_image(store, "app", [b"signature"], subject=descriptor)
    assert not GarbageCollector(store, delay=HOUR, clock=later()).collect("app").manifests
    store.delete_manifest("app", subject)
    # Default policy: the referrer stays even with its subject gone (zot: deleteReferrers is false).
    report = GarbageCollector(store, delay=HOUR, clock=later()).collect("app")
    assert referrer not in report.manifests
    retention = {"delay": HOUR, "policies": [{"repositories": ["**"], "deleteReferrers": True}]}
    report = GarbageCollector(store, delay=HOUR, retention=retention, clock=later()).collect("app")
    assert report.manifests == [referrer]


def test_an_emptied_repository_is_removed_but_nested_ones_stay(store: ImageStore, tmp_path: Path) -> None:
    digest, _ = put_image(store, "team", [b"x"], tag="v1")
    put_image(store, "team/app", [b"y"], tag="v1")
    store.delete_manifest("team", digest)
    report = GarbageCollector(store, delay=HOUR, clock=later()).collect("team")
    assert report.repo_removed
    assert not store.repo_exists("team")
    assert store.list_repositories(None, None) == ["team/app"]
    assert (tmp_path / "root" / "team" / "app" / "index.json").exists()
    assert store.get_manifest("team/app", "v1")


def test_dedupe_copies_and_index_stay_right_when_one_copy_goes(store: ImageStore) -> None:
    put_image(store, "keep", [b"common"], tag="v1")
    gone, blobs = put_image(store, "drop", [b"common"], tag="v1")
    common = blobs[1]
    store.delete_manifest("drop", gone)
    GarbageCollector(store, delay=HOUR, clock=later()).collect("drop")
    assert not has(store, "drop", common)
    assert store.read_blob("keep", Digest.parse(common)) == b"common"
    assert store.index.locations(common) == [layout.blob_path("keep", Digest.parse(common))]
    # A later push of the same content links the surviving copy.
    put_blob(store, "again", b"common")
    assert store.read_blob("again", Digest.parse(common)) == b"common"


def test_dry_run_reports_and_changes_nothing(store: ImageStore, tmp_path: Path) -> None:
    put_image(store, "app", [b"a"], tag="v1")
    gone, _ = put_image(store, "app", [b"b"], tag="v2")
    store.delete_manifest("app", "v2")
    before = sorted(str(p) for p in (tmp_path / "root").rglob("*"))
    index_before = (tmp_path / "root" / "app" / "index.json").read_bytes()
    report = GarbageCollector(store, delay=HOUR, clock=later(), dry_run=True).collect("app")
    assert report.dry_run and report.manifests == [gone] and len(report.blobs) == 3
    assert sorted(str(p) for p in (tmp_path / "root").rglob("*")) == before
    assert (tmp_path / "root" / "app" / "index.json").read_bytes() == index_before


def test_retention_drops_tags_by_pattern_and_statistics(store: ImageStore) -> None:
    digests = {tag: put_image(store, "prod/app", [tag.encode()], tag=tag)[0]
               for tag in ("v1.0", "v2.0", "v2.1", "v3.0", "dev")}
    now = time.time() + 2 * HOUR
    stats = {digests["v3.0"]: ManifestStats(pushed=now - 1000 * HOUR, last_pull=now - HOUR),
             digests["dev"]: ManifestStats(pushed=now - 1000 * HOUR)}
    retention = {"delay": HOUR, "policies": [{"repositories": ["prod/*"], "keepTags": [
        {"patterns": ["^v2"]},
        {"patterns": ["^v3", "dev"], "pulledWithin": 24 * HOUR},
    ]}]}
    report = GarbageCollector(store, delay=HOUR, retention=retention, stats=lambda repo: stats,
                              clock=lambda: now).collect("prod/app")
    # v1.0 matches no entry; dev matches the second but was never pulled; v3.0 was pulled an hour ago.
    assert sorted(report.tags) == ["dev", "v1.0"]
    assert sorted(store.view("prod/app").tags) == ["v2.0", "v2.1", "v3.0"]
    # Untagged by retention and older than the delay, their manifests go in the same pass.
    assert sorted(report.manifests) == sorted([digests["dev"], digests["v1.0"]])


def test_a_repository_no_policy_matches_loses_nothing(store: ImageStore) -> None:
    put_image(store, "other", [b"a"], tag="v1")
    gone, _ = put_image(store, "other", [b"b"], tag="v2")
    store.delete_manifest("other", "v2")
    retention = {"policies": [{"repositories": ["prod/**"], "keepTags": [{"patterns": ["none"]}]}]}
    report = GarbageCollector(store, delay=HOUR, retention=retention, clock=later()).collect("other")
    assert not report.tags and not report.manifests
    assert has(store, "other", gone)


def test_a_push_whose_checked_blob_was_collected_meanwhile_is_refused(store: ImageStore) -> None:
    """The registry checks references before the lock; the store re-checks them under it, where GC deletes."""
    from zotpy.errors import ManifestBlobUnknown

    put_image(store, "app", [b"base"], tag="v1")
    layer = put_blob(store, "app", b"pushed, then collected")
    config = put_blob(store, "app", b"{}")
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {**config, "mediaType": mt.OCI_CONFIG},
           "layers": [layer]}
    raw = json.dumps(doc).encode()
    checked = [Digest.parse(config["digest"]), Digest.parse(layer["digest"])]
    GarbageCollector(store, delay=HOUR, clock=later()).collect("app")  # between check and lock
    with pytest.raises(ManifestBlobUnknown):
        store.put_manifest("app", parse_manifest(raw, mt.OCI_MANIFEST, False), Digest.of(raw), ["v2"],
                           verify=checked)
    assert sorted(store.view("app").tags) == ["v1"]


def test_retention_dry_run_only_logs_manifest_decisions(
        store: ImageStore, caplog: pytest.LogCaptureFixture) -> None:
    put_image(store, "app", [b"a"], tag="v1")
    gone, gone_blobs = put_image(store, "app", [b"b"], tag="v2")
    store.delete_manifest("app", "v2")
    orphan = put_blob(store, "app", b"never referenced")["digest"]
    retention = {"dryRun": True, "delay": HOUR, "policies": [{"repositories": ["**"]}]}
    with caplog.at_level("INFO", logger="zotpy.storage.gc"):
        report = GarbageCollector(store, delay=HOUR, retention=retention, clock=later()).collect("app")
    assert not report.manifests and report.blobs == [orphan]
    assert has(store, "app", gone) and all(has(store, "app", d) for d in gone_blobs)
    assert any(r.getMessage() == "gc would delete" and r.reference == gone  # type: ignore[attr-defined]
               for r in caplog.records)
