"""Tests for zotpy.meta.store and zotpy.meta.hooks over a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest

from zotpy.meta.db import open_database, schema_version
from zotpy.meta.extract import COSIGN_ARTIFACT_TYPE, ImageRecord
from zotpy.meta.hooks import DownloadCounter, MetaHooks
from zotpy.meta.store import COMPONENT, SCHEMA_VERSION, MetaStore
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Manifest, parse_stored


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["sqlite", "postgresql"])
def meta(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetaStore]:
    """The store on the embedded SQLite file, and on PostgreSQL (a fresh schema of the session's cluster)."""
    if request.param == "sqlite":
        db: peewee.Database = open_database(str(tmp_path / "zotpy.db"))
    else:
        from zotpy.meta.postgres import open_postgres

        db = open_postgres(request.getfixturevalue("postgres").cache_driver())
    store = MetaStore(db)
    store.ensure_schema()
    yield store
    db.close()


def record(name: str, layers: tuple[str, ...] = ("l1",), **extra: Any) -> ImageRecord:
    return ImageRecord(digest=sha(name.encode()), media_type=mt.OCI_MANIFEST, size=100,
                       config_digest=sha(b"cfg-" + name.encode()), config_size=10,
                       layers=[(sha(layer.encode()), 5) for layer in layers], **extra)


def put(meta: MetaStore, repo: str, rec: ImageRecord, tags: tuple[str, ...] = ("1.0",), now: float = 100.0,
        signature: tuple[str, str] | None = None) -> None:
    meta.record_put(repo, rec.digest, rec.media_type, [rec], tags, signature, now)


def tags_of(meta: MetaStore, repo: str) -> dict[str, str]:
    ids = meta.repos([repo])
    return {row[1]: row[2] for row in meta.tags(list(ids))} if ids else {}


def test_the_schema_is_created_once_and_versioned(meta: MetaStore) -> None:
    meta.ensure_schema()
    assert schema_version(meta.db, COMPONENT) == SCHEMA_VERSION


def test_a_put_records_repository_tag_manifest_image_and_layers(meta: MetaStore) -> None:
    rec = record("a", layers=("l1", "l2"))
    put(meta, "team/app", rec)
    assert tags_of(meta, "team/app") == {"1.0": rec.digest}
    (repo_id,) = meta.repos(["team/app"])
    assert meta.stats([repo_id])[(repo_id, rec.digest)] == (100.0, None, 0, None)
    assert meta.images([rec.digest])[rec.digest]["total_size"] == 100 + 10 + 10
    assert meta.images_with_layer(sha(b"l2")) == [rec.digest]
    assert meta.images_with_config(rec.config_digest or "") == [rec.digest]
    assert set(meta.images_with_first_layer(sha(b"l1"))) == {rec.digest}
    assert meta.digests_with_prefix(rec.digest[:20]) == [rec.digest]


def test_moving_a_tag_keeps_one_row_and_a_new_time(meta: MetaStore) -> None:
    first, second = record("a"), record("b")
    put(meta, "app", first, now=1.0)
    put(meta, "app", second, now=2.0)
    assert tags_of(meta, "app") == {"1.0": second.digest}
    (repo_id,) = meta.repos(["app"])
    assert [row[4] for row in meta.tags([repo_id])] == [2.0]


def test_pushing_again_keeps_the_first_push_time(meta: MetaStore) -> None:
    rec = record("a")
    put(meta, "app", rec, now=1.0)
    put(meta, "app", rec, tags=("2.0",), now=5.0)
    (repo_id,) = meta.repos(["app"])
    assert meta.stats([repo_id])[(repo_id, rec.digest)][0] == 1.0


def test_deleting_a_tag_keeps_the_manifest(meta: MetaStore) -> None:
    rec = record("a")
    put(meta, "app", rec, tags=("1.0", "latest"))
    meta.record_delete("app", rec.digest, "latest")
    assert tags_of(meta, "app") == {"1.0": rec.digest}
    assert meta.known_images([rec.digest]) == {rec.digest}


def test_deleting_a_digest_removes_its_tags_rows_and_unused_image(meta: MetaStore) -> None:
    shared, alone = record("shared"), record("alone", layers=("only",))
    put(meta, "one", shared)
    put(meta, "two", shared)
    put(meta, "one", alone, tags=("2.0",))
    meta.record_delete("one", shared.digest, shared.digest)
    meta.record_delete("one", alone.digest, alone.digest)
    assert tags_of(meta, "one") == {}
    assert meta.known_images([shared.digest, alone.digest]) == {shared.digest}, "still used by repo two"
    assert meta.images_with_layer(sha(b"only")) == []


def test_deleting_in_an_unknown_repository_is_a_no_op(meta: MetaStore) -> None:
    meta.record_delete("nowhere", "sha256:" + "0" * 64, "latest")
    assert meta.repos() == {}


def test_a_signature_is_recorded_as_a_signature_not_an_image(meta: MetaStore) -> None:
    image, sig = record("img"), record("sig")
    put(meta, "app", image)
    put(meta, "app", sig, tags=(f"sha256-{image.digest[7:]}.sig",), signature=("cosign", image.digest))
    (repo_id,) = meta.repos(["app"])
    assert tags_of(meta, "app") == {"1.0": image.digest}
    assert meta.signatures([repo_id]) == {(repo_id, image.digest): [("cosign", sig.digest)]}
    meta.record_delete("app", sig.digest, f"sha256-{image.digest[7:]}.sig")
    assert meta.signatures([repo_id]) == {}


def test_referrers_are_found_by_subject_within_the_repository(meta: MetaStore) -> None:
    image = record("img")
    sbom = record("sbom", subject=image.digest, artifact_type="application/vnd.example.sbom",
                  annotations={"k": "v"})
    put(meta, "app", image)
    put(meta, "app", sbom, tags=())
    put(meta, "other", sbom, tags=())
    ids = meta.repos(["app"])
    found = meta.referrers(list(ids), [image.digest])
    (repo_id,) = ids
    assert found == {(repo_id, image.digest): [{
        "MediaType": mt.OCI_MANIFEST, "ArtifactType": "application/vnd.example.sbom", "Size": 100,
        "Digest": sbom.digest, "Annotations": [{"Key": "k", "Value": "v"}]}]}


def test_downloads_are_added_in_one_batch(meta: MetaStore) -> None:
    rec = record("a")
    put(meta, "app", rec)
    meta.add_downloads({("app", rec.digest): (3, 50.0), ("gone", rec.digest): (1, 50.0)})
    meta.add_downloads({("app", rec.digest): (2, 60.0)})
    (repo_id,) = meta.repos(["app"])
    assert meta.stats([repo_id])[(repo_id, rec.digest)][2:] == (5, 60.0)
    assert meta.repo_downloads() == {repo_id: 5}


def test_replacing_a_repository_keeps_statistics_and_unchanged_tag_times(meta: MetaStore) -> None:
    kept, moved, new = record("kept"), record("moved"), record("new")
    put(meta, "app", kept, tags=("stable",), now=1.0)
    put(meta, "app", moved, tags=("edge",), now=1.0)
    meta.add_downloads({("app", kept.digest): (7, 2.0)})
    meta.replace_repo("app", "fp", [new], [(kept.digest, mt.OCI_MANIFEST), (new.digest, mt.OCI_MANIFEST)],
                      [("stable", kept.digest, mt.OCI_MANIFEST), ("edge", new.digest, mt.OCI_MANIFEST)], [],
                      9.0)
    (repo_id,) = meta.repos(["app"])
    assert meta.stats([repo_id])[(repo_id, kept.digest)] == (1.0, None, 7, 2.0)
    assert meta.stats([repo_id])[(repo_id, new.digest)][0] == 9.0
    assert (repo_id, moved.digest) not in meta.stats([repo_id])
    assert {row[1]: row[4] for row in meta.tags([repo_id])} == {"stable": 1.0, "edge": 9.0}
    assert meta.repo_fingerprints()["app"] == (repo_id, "fp")
    assert meta.drop_all_orphans() == 1, "the moved-away image is no longer used"


def test_index_sizes_are_the_sum_of_their_children(meta: MetaStore) -> None:
    one, two = record("one"), record("two", layers=("x", "y"))
    index = ImageRecord(digest=sha(b"index"), media_type=mt.OCI_INDEX, size=300,
                        children=[{"digest": one.digest}, {"digest": two.digest}])
    meta.record_put("app", index.digest, mt.OCI_INDEX, [one, two, index], ("multi",), None, 1.0)
    totals = {d: row["total_size"] for d, row in meta.images(None, ["total_size"]).items()}
    assert totals[index.digest] == totals[one.digest] + totals[two.digest]
    assert meta.parents([one.digest]) == {one.digest: [index.digest]}


def test_star_counts_and_user_repositories(meta: MetaStore) -> None:
    meta.t.star.insert_many([{"user": "u1", "repo": "app"}, {"user": "u2", "repo": "app"}]).execute()
    meta.t.bookmark.insert(user="u1", repo="lib").execute()
    assert meta.star_counts() == {"app": 2}
    assert meta.user_repos("u1", "star") == {"app"} and meta.user_repos("u1", "bookmark") == {"lib"}


# -- hooks ---------------------------------------------------------------------------------------


def parsed(body: dict[str, Any]) -> Manifest:
    return parse_stored(json.dumps(body).encode(), body["mediaType"])


def test_hooks_write_what_a_put_brings(meta: MetaStore) -> None:
    config = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": sha(config), "size": len(config)}, "layers": []}
    hooks = MetaHooks(meta, DownloadCounter(meta, interval=60), clock=lambda: 7.0)
    manifest = parsed(body)
    digest = manifest.digest()
    hooks.on_put("app", digest, manifest, ("1.0",), lambda d: config)
    assert tags_of(meta, "app") == {"1.0": str(digest)}
    assert meta.images([str(digest)])[str(digest)]["arch"] == "amd64"
    hooks.on_get("app", digest, "1.0")
    hooks.on_get("app", digest, "sha256-" + "a" * 64)  # a referrers-schema tag is not a pull
    hooks.counter.flush()
    (repo_id,) = meta.repos(["app"])
    assert meta.stats([repo_id])[(repo_id, str(digest))][2] == 1
    hooks.on_delete("app", digest, "1.0")
    assert tags_of(meta, "app") == {}
    hooks.counter.close()


def test_a_push_under_a_referrers_schema_tag_only_is_ignored(meta: MetaStore) -> None:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    manifest = parsed(body)
    hooks = MetaHooks(meta, DownloadCounter(meta, interval=60))
    hooks.on_put("app", manifest.digest(), manifest, ("sha256-" + "b" * 64,), lambda d: b"")
    assert meta.repos() == {}
    hooks.counter.close()


def test_an_oci_cosign_signature_goes_to_signatures(meta: MetaStore) -> None:
    subject = "sha256:" + "c" * 64
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": COSIGN_ARTIFACT_TYPE,
            "config": {"mediaType": mt.OCI_EMPTY, "digest": sha(b"{}"), "size": 2}, "layers": [],
            "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject, "size": 1}}
    manifest = parsed(body)
    hooks = MetaHooks(meta, DownloadCounter(meta, interval=60))
    hooks.on_put("app", manifest.digest(), manifest, (), lambda d: b"{}")
    (repo_id,) = meta.repos(["app"])
    assert meta.signatures([repo_id]) == {(repo_id, subject): [("cosign", str(manifest.digest()))]}
    assert meta.stats([repo_id]) == {}
    hooks.counter.close()


def test_an_index_put_describes_children_it_has_not_seen(meta: MetaStore) -> None:
    child_body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                  "config": {"mediaType": "application/vnd.example", "digest": sha(b"x"), "size": 1},
                  "layers": []}
    child_raw = json.dumps(child_body).encode()
    index_body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": sha(child_raw), "size": len(child_raw)}]}
    index = parsed(index_body)
    blobs = {sha(child_raw): child_raw}
    hooks = MetaHooks(meta, DownloadCounter(meta, interval=60))
    hooks.on_put("app", index.digest(), index, ("multi",), lambda d: blobs[str(d)])
    assert meta.known_images([sha(child_raw), str(index.digest())]) == {sha(child_raw), str(index.digest())}
    hooks.counter.close()


# -- download counter ----------------------------------------------------------------------------


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[dict[tuple[str, str], tuple[int, float]]] = []
        self.fail = fail
        self.db = open_database(":memory:")

    def add_downloads(self, counts: dict[tuple[str, str], tuple[int, float]]) -> None:
        if self.fail:
            raise RuntimeError("database down")
        self.batches.append(dict(counts))


def test_pulls_are_batched_until_the_limit() -> None:
    store = FakeStore()
    counter = DownloadCounter(store, interval=60, max_events=3, clock=lambda: 5.0)  # type: ignore[arg-type]
    counter.add("app", "d1")
    counter.add("app", "d1")
    assert store.batches == []
    counter.add("app", "d2")
    assert store.batches == [{("app", "d1"): (2, 5.0), ("app", "d2"): (1, 5.0)}]
    counter.close()


def test_a_timer_flushes_pending_pulls() -> None:
    store = FakeStore()
    counter = DownloadCounter(store, interval=0.01, clock=lambda: 1.0)  # type: ignore[arg-type]
    counter.add("app", "d")
    timer = counter._timer
    assert timer is not None
    timer.join(2)
    assert store.batches == [{("app", "d"): (1, 1.0)}]
    counter.close()


def test_a_failed_flush_keeps_the_counts() -> None:
    store = FakeStore(fail=True)
    counter = DownloadCounter(store, interval=60, clock=lambda: 1.0)  # type: ignore[arg-type]
    counter.add("app", "d")
    counter.flush()
    store.fail = False
    counter.add("app", "d")
    counter.flush()
    assert store.batches == [{("app", "d"): (2, 1.0)}]
    counter.close()


def test_digest_objects_are_recorded_as_text(meta: MetaStore) -> None:
    rec = record("txt")
    put(meta, "app", rec)
    counter = DownloadCounter(meta, interval=60)
    MetaHooks(meta, counter).on_get("app", Digest.parse(rec.digest), "1.0")
    counter.close()
    (repo_id,) = meta.repos(["app"])
    assert meta.stats([repo_id])[(repo_id, rec.digest)][2] == 1
