"""Tests for zotpy.meta.rebuild over an in-memory storage source."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from zotpy.errors import BlobUnknown
from zotpy.meta.db import open_database
from zotpy.meta.rebuild import rebuild
from zotpy.meta.store import MetaStore
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class MemorySource:
    """Repositories as index.json entries plus blobs, with a fingerprint per repository."""

    def __init__(self) -> None:
        self.repos: dict[str, list[dict[str, Any]]] = {}
        self.blobs: dict[str, bytes] = {}
        self.versions: dict[str, int] = {}
        self.reads = 0

    def add(self, data: bytes) -> str:
        self.blobs[sha(data)] = data
        return sha(data)

    def image(self, repo: str, tag: str | None, seed: str, **extra: Any) -> str:
        config = json.dumps({"os": "linux", "architecture": "amd64", "created": "2024-01-01T00:00:00Z",
                             "seed": seed}).encode()
        layer = seed.encode()
        body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": self.add(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": self.add(layer),
                            "size": len(layer)}], **extra}
        return self.entry(repo, tag, json.dumps(body).encode(), mt.OCI_MANIFEST)

    def entry(self, repo: str, tag: str | None, raw: bytes, media_type: str) -> str:
        digest = self.add(raw)
        item: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(raw)}
        if tag is not None:
            item["annotations"] = {mt.TAG_ANNOTATION: tag}
        self.repos.setdefault(repo, []).append(item)
        self.versions[repo] = self.versions.get(repo, 0) + 1
        return digest

    def repositories(self) -> list[str]:
        return list(self.repos)

    def fingerprint(self, repo: str) -> str | None:
        return f"v{self.versions[repo]}"

    def index_entries(self, repo: str) -> list[dict[str, Any]]:
        return self.repos[repo]

    def read_blob(self, repo: str, digest: Digest) -> bytes:
        self.reads += 1
        if str(digest) not in self.blobs:
            raise BlobUnknown()
        return self.blobs[str(digest)]


@pytest.fixture
def meta(tmp_path: Path) -> MetaStore:
    store = MetaStore(open_database(str(tmp_path / "zotpy.db")))
    store.ensure_schema()
    return store


def tags(meta: MetaStore) -> dict[tuple[str, str], str]:
    names = meta.repos()
    return {(names[row[0]], row[1]): row[2] for row in meta.tags()}


def test_a_rebuild_indexes_every_repository(meta: MetaStore) -> None:
    source = MemorySource()
    one = source.image("team/one", "1.0", "a")
    two = source.image("two", "latest", "b")
    untagged = source.image("two", None, "c")
    report = rebuild(meta, [source], "stamp")
    assert (report.repositories, report.parsed, report.removed) == (2, 2, 0)
    assert tags(meta) == {("team/one", "1.0"): one, ("two", "latest"): two}
    assert meta.known_images([untagged]) == {untagged}


def test_an_unchanged_root_is_skipped_and_changes_nothing(meta: MetaStore) -> None:
    source = MemorySource()
    source.image("app", "1.0", "a")
    rebuild(meta, [source], "stamp")
    before = (tags(meta), meta.stats())
    reads = source.reads
    report = rebuild(meta, [source], "stamp")
    assert report.parsed == 0 and source.reads == reads
    assert (tags(meta), meta.stats()) == before


def test_a_changed_repository_is_parsed_again_keeping_statistics(meta: MetaStore) -> None:
    source = MemorySource()
    first = source.image("app", "1.0", "a")
    rebuild(meta, [source], "stamp")
    meta.add_downloads({("app", first): (4, 10.0)})
    second = source.image("app", "2.0", "b")
    report = rebuild(meta, [source], "stamp")
    assert report.parsed == 1 and report.images == 1, "only the new manifest is read and parsed"
    assert tags(meta) == {("app", "1.0"): first, ("app", "2.0"): second}
    (repo_id,) = meta.repos(["app"])
    assert meta.stats([repo_id])[(repo_id, first)][2] == 4


def test_repositories_gone_from_disk_are_removed(meta: MetaStore) -> None:
    source = MemorySource()
    source.image("stays", "1", "a")
    gone = source.image("goes", "1", "b")
    rebuild(meta, [source], "stamp")
    del source.repos["goes"]
    report = rebuild(meta, [source], "stamp")
    assert report.removed == 1
    assert set(meta.repos().values()) == {"stays"}
    assert meta.known_images([gone]) == set(), "its image rows are dropped too"


def test_a_new_stamp_forces_a_full_walk(meta: MetaStore) -> None:
    source = MemorySource()
    source.image("app", "1", "a")
    rebuild(meta, [source], "v1")
    assert rebuild(meta, [source], "v2").parsed == 1


def test_unreadable_manifests_are_skipped(meta: MetaStore) -> None:
    source = MemorySource()
    good = source.image("app", "good", "a")
    source.repos["app"].append({"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "9" * 64, "size": 3,
                                "annotations": {mt.TAG_ANNOTATION: "missing"}})
    rebuild(meta, [source], "stamp")
    assert tags(meta) == {("app", "good"): good}


def test_signatures_and_referrers_tags_are_not_images(meta: MetaStore) -> None:
    source = MemorySource()
    image = source.image("app", "1.0", "a")
    sig = source.image("app", f"sha256-{image[7:]}.sig", "sig")
    source.image("app", f"sha256-{image[7:]}", "fallback")
    rebuild(meta, [source], "stamp")
    (repo_id,) = meta.repos(["app"])
    assert tags(meta) == {("app", "1.0"): image}
    assert meta.signatures([repo_id]) == {(repo_id, image): [("cosign", sig)]}


def test_indexes_bring_their_children(meta: MetaStore) -> None:
    source = MemorySource()
    child = source.image("app", None, "child")
    source.repos["app"].clear()  # the child is listed only by the index
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": child, "size": len(source.blobs[child]),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    index = source.entry("app", "multi", raw, mt.OCI_INDEX)
    rebuild(meta, [source], "stamp")
    assert meta.parents([child]) == {child: [index]}
    rows = meta.images([index, child], ["total_size"])
    assert rows[index]["total_size"] == rows[child]["total_size"]


def test_the_first_source_holding_a_name_wins(meta: MetaStore) -> None:
    first, second = MemorySource(), MemorySource()
    kept = first.image("app", "1", "a")
    second.image("app", "1", "b")
    rebuild(meta, [first, second], "stamp")
    assert tags(meta) == {("app", "1"): kept}
