"""Tests for zotpy.storage.scrub over a real LocalDriver, StoreIndex (SQLite) and LockSet."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zotpy.locks import LockSet
from zotpy.meta.db import close_if_open, open_database
from zotpy.meta.storeindex import StoreIndex
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Manifest, parse_manifest
from zotpy.storage import layout
from zotpy.storage.drivers import LocalDriver
from zotpy.storage.imagestore import ImageStore
from zotpy.storage.scrub import AFFECTED, OK, ScrubPass, ScrubResult, Throttle, scrub_repository

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def store(root: Path, tmp_path: Path) -> Iterator[ImageStore]:
    index = StoreIndex(open_database(str(tmp_path / "index.db")))
    yield ImageStore(LocalDriver(str(root)), index, LockSet(str(tmp_path / "locks")))
    close_if_open(index.db)


def put(store: ImageStore, repo: str, data: bytes) -> dict[str, Any]:
    digest = Digest.of(data)
    store.put_blob(repo, digest, [data])
    return {"mediaType": LAYER_TYPE, "digest": str(digest), "size": len(data)}


def push_image(store: ImageStore, repo: str, tag: str | None, *layers: bytes, **extra: Any) -> Manifest:
    config = put(store, repo, json.dumps({"tag": tag, "n": os.urandom(4).hex()}).encode())
    config["mediaType"] = mt.OCI_CONFIG
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config,
            "layers": [put(store, repo, layer) for layer in layers], **extra}
    manifest = parse_manifest(json.dumps(body).encode(), mt.OCI_MANIFEST, False)
    store.put_manifest(repo, manifest, manifest.digest(), [tag] if tag else [])
    return manifest


def push_index(store: ImageStore, repo: str, tag: str, *children: Manifest) -> Manifest:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
            "manifests": [{"mediaType": c.media_type, "digest": str(c.digest()), "size": len(c.raw)}
                          for c in children]}
    manifest = parse_manifest(json.dumps(body).encode(), mt.OCI_INDEX, False)
    store.put_manifest(repo, manifest, manifest.digest(), [tag])
    return manifest


def blob(root: Path, repo: str, digest: str | Digest) -> Path:
    return root / layout.blob_path(repo, Digest.parse(str(digest)))


def by_reference(results: list[ScrubResult]) -> dict[str, ScrubResult]:
    return {r.reference: r for r in results}


def test_sound_repository_is_ok(store: ImageStore) -> None:
    push_image(store, "app", "v1", b"layer one", b"layer two")
    untagged = push_image(store, "app", None, b"layer one")
    results = scrub_repository(store, "app")
    assert [(r.reference, r.status) for r in results] == [("v1", OK), (str(untagged.digest()), OK)]
    assert results[0].image == "app:v1"
    assert results[1].image == f"app@{untagged.digest()}"
    assert all(r.affected_blob == "" and r.error == "" for r in results)


def test_corrupted_layer_is_named(store: ImageStore, root: Path) -> None:
    layer = b"original layer content"
    push_image(store, "app", "bad", layer)
    push_image(store, "app", "good", b"another layer")
    path = blob(root, "app", Digest.of(layer))
    path.write_bytes(b"ORIGINAL layer content")  # same size, different bytes
    results = by_reference(scrub_repository(store, "app"))
    assert results["good"].status == OK
    assert results["bad"].status == AFFECTED
    assert results["bad"].affected_blob == str(Digest.of(layer))
    assert "does not match" in results["bad"].error


def test_missing_blob_is_named(store: ImageStore, root: Path) -> None:
    layer = b"a layer that will vanish"
    push_image(store, "app", "v1", layer)
    blob(root, "app", Digest.of(layer)).unlink()
    (result,) = scrub_repository(store, "app")
    assert result.status == AFFECTED
    assert result.affected_blob == str(Digest.of(layer))
    assert result.error == "blob missing"


def test_truncated_layer_reports_the_size(store: ImageStore, root: Path) -> None:
    layer = b"twenty bytes of data"
    push_image(store, "app", "v1", layer)
    blob(root, "app", Digest.of(layer)).write_bytes(b"twenty")
    (result,) = scrub_repository(store, "app")
    assert result.affected_blob == str(Digest.of(layer))
    assert "size 6 differs" in result.error


def test_missing_config_and_corrupt_manifest(store: ImageStore, root: Path) -> None:
    no_config = push_image(store, "app", "noconfig", b"layer a")
    broken = push_image(store, "app", "broken", b"layer b")
    assert no_config.config is not None
    blob(root, "app", no_config.config.digest).unlink()
    blob(root, "app", broken.digest()).write_bytes(b" " * len(broken.raw))
    results = by_reference(scrub_repository(store, "app"))
    assert results["noconfig"].affected_blob == str(no_config.config.digest)
    assert results["broken"].affected_blob == str(broken.digest())
    assert results["broken"].error == "content does not match the digest"


def test_manifest_that_is_not_json_but_hashes(store: ImageStore, root: Path) -> None:
    """A manifest blob whose index entry was hand-edited to point at a non-JSON blob."""
    junk = b"not json at all"
    store.put_blob("app", Digest.of(junk), [junk])
    store.ensure_repo("app")
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(junk)), "size": len(junk),
             "annotations": {mt.TAG_ANNOTATION: "junk"}}
    (root / "app/index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (result,) = scrub_repository(store, "app")
    assert result.status == AFFECTED
    assert result.affected_blob == str(Digest.of(junk))
    assert result.error.startswith("invalid manifest")


def test_index_walks_children(store: ImageStore, root: Path) -> None:
    amd = push_image(store, "multi", None, b"amd64 layer")
    arm = push_image(store, "multi", None, b"arm64 layer")
    push_index(store, "multi", "latest", amd, arm)
    blob(root, "multi", Digest.of(b"arm64 layer")).write_bytes(b"ARM64 LAYER")
    results = scrub_repository(store, "multi")
    latest = by_reference(results)["latest"]
    assert latest.status == AFFECTED
    assert latest.affected_blob == str(Digest.of(b"arm64 layer"))
    assert by_reference(results)[str(amd.digest())].status == OK


def test_referrer_checks_a_present_subject(store: ImageStore, root: Path) -> None:
    subject = push_image(store, "app", "v1", b"subject layer")
    descriptor = {"mediaType": subject.media_type, "digest": str(subject.digest()), "size": len(subject.raw)}
    referrer = push_image(store, "app", None, b"signature", subject=descriptor)
    dangling = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"absent")), "size": 6}
    orphan = push_image(store, "app", None, b"sbom", subject=dangling)
    assert by_reference(scrub_repository(store, "app"))[str(orphan.digest())].status == OK
    blob(root, "app", Digest.of(b"subject layer")).unlink()
    results = by_reference(scrub_repository(store, "app"))
    assert results[str(referrer.digest())].affected_blob == str(Digest.of(b"subject layer"))
    assert results[str(orphan.digest())].status == OK  # a subject not pushed yet is allowed


def test_unknown_repository_has_no_results(store: ImageStore) -> None:
    assert scrub_repository(store, "nothing/here") == []


def test_scrub_is_read_only(store: ImageStore, root: Path) -> None:
    push_image(store, "app", "v1", b"one")
    blob(root, "app", Digest.of(b"one")).write_bytes(b"two")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    scrub_repository(store, "app")
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert before == after


def test_each_blob_is_hashed_once_per_repository(store: ImageStore) -> None:
    shared = b"shared layer" * 100
    for tag in ("a", "b", "c"):
        push_image(store, "app", tag, shared)
    reads: list[int] = []
    throttle = Throttle()
    throttle.read = reads.append  # type: ignore[method-assign]
    scrub_repository(store, "app", throttle)
    # three configs and three manifests (distinct) plus the shared layer once
    assert reads.count(len(shared)) == 1


def test_throttle_sleeps_between_blobs_and_bounds_the_rate() -> None:
    slept: list[float] = []
    throttle = Throttle(pause=0.01, bytes_per_second=1000, sleep=slept.append)
    throttle.blob_done()
    throttle.read(500)
    assert slept[0] == 0.01
    assert 0.4 < slept[1] <= 0.5


def test_pass_steps_one_repository_each_and_logs(store: ImageStore, root: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    push_image(store, "a", "v1", b"x")
    push_image(store, "b/c", "v1", b"y")
    blob(root, "b/c", Digest.of(b"y")).unlink()
    scrub = ScrubPass([store], lambda _repo: store)
    steps = list(scrub.steps())
    assert len(steps) == 2
    with caplog.at_level(logging.INFO, logger="zotpy.storage.scrub"):
        for step in steps:
            step()
    records = [r for r in caplog.records if r.name == "zotpy.storage.scrub"]
    fields = [vars(r) for r in records]
    assert [(f["image"], f["status"]) for f in fields] == [("a:v1", OK), ("b/c:v1", AFFECTED)]
    assert fields[1]["affectedBlob"] == str(Digest.of(b"y"))
    assert records[1].levelno == logging.ERROR


def test_pass_skips_repositories_routed_to_another_store(store: ImageStore) -> None:
    push_image(store, "a", "v1", b"x")
    push_image(store, "sub/r", "v1", b"y")
    other = object()
    scrub = ScrubPass([store], lambda repo: other if repo.startswith("sub/") else store)  # type: ignore[arg-type,return-value]
    assert [repo for _, repo in scrub.targets()] == ["a"]
