"""Tests for zotpy.storage.repoview: tags, pages, children, referenced blobs and referrers of a repository."""

from __future__ import annotations

import json
from typing import Any

import pytest

from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Manifest, parse_stored
from zotpy.storage.repoview import ManifestCache, RepoView


def desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data), **extra}


class Store:
    """Manifests by digest, and a loader for RepoView that counts its calls."""

    def __init__(self) -> None:
        self.raw: dict[str, tuple[bytes, str]] = {}
        self.loads: list[str] = []

    def add(self, body: dict[str, Any], media_type: str = mt.OCI_MANIFEST) -> dict[str, Any]:
        raw = json.dumps({"schemaVersion": 2, "mediaType": media_type, **body}).encode()
        self.raw[str(Digest.of(raw))] = (raw, media_type)
        return {"mediaType": media_type, "digest": str(Digest.of(raw)), "size": len(raw)}

    def image(self, name: str, **extra: Any) -> dict[str, Any]:
        config = desc(mt.OCI_CONFIG, f"config {name}".encode())
        layer = desc("application/vnd.oci.image.layer.v1.tar", f"layer {name}".encode())
        return self.add({"config": config, "layers": [layer], **extra})

    def load(self, digest: str, media_type: str) -> Manifest | None:
        self.loads.append(digest)
        found = self.raw.get(digest)
        return parse_stored(found[0], media_type or found[1]) if found else None

    def view(self, entries: list[Any]) -> RepoView:
        return RepoView(entries, self.load)


def tagged(entry: dict[str, Any], tag: str) -> dict[str, Any]:
    return {**entry, "annotations": {mt.TAG_ANNOTATION: tag}}


@pytest.fixture
def store() -> Store:
    return Store()


# -- tags ------------------------------------------------------------------------------


def test_tags(store: Store) -> None:
    a, b = store.image("a"), store.image("b")
    view = store.view([tagged(a, "v2"), tagged(b, "latest"), a, tagged(a, "v10")])
    assert set(view.tags) == {"v2", "latest", "v10"}
    assert view.tags["latest"]["digest"] == b["digest"]
    assert view.sorted_tags == ["latest", "v10", "v2"]
    assert store.loads == []  # tags come from index.json alone


def test_repeated_tag_first_entry_wins(store: Store) -> None:
    a, b = store.image("a"), store.image("b")
    view = store.view([tagged(a, "t"), tagged(b, "t")])
    assert view.tags["t"]["digest"] == a["digest"]
    assert view.sorted_tags == ["t"]


def test_malformed_entries_are_ignored(store: Store) -> None:
    a = store.image("a")
    view = store.view([None, "x", 5, {"mediaType": mt.OCI_MANIFEST}, {"digest": 7},
                       tagged(a, "ok"), {**a, "annotations": {mt.TAG_ANNOTATION: 3}},
                       {**a, "annotations": "nope"}])
    assert view.sorted_tags == ["ok"]
    assert list(view.top_level) == [a["digest"]]


@pytest.fixture
def paged(store: Store) -> RepoView:
    a = store.image("a")
    return store.view([tagged(a, t) for t in ["c", "a", "e", "b", "d"]])


@pytest.mark.parametrize(("last", "limit", "expected"), [
    (None, None, (["a", "b", "c", "d", "e"], False)),
    (None, 2, (["a", "b"], True)),
    (None, 5, (["a", "b", "c", "d", "e"], False)),
    (None, 6, (["a", "b", "c", "d", "e"], False)),
    ("b", 2, (["c", "d"], True)),
    ("c", 2, (["d", "e"], False)),
    ("c", None, (["d", "e"], False)),
    ("e", 3, ([], False)),
    ("e", None, ([], False)),
    ("0", 1, (["a"], True)),  # before every tag
    ("z", 1, ([], False)),  # after every tag
    ("bb", 1, (["c"], True)),  # between two tags, unknown
    ("bb", 3, (["c", "d", "e"], False)),
    ("", 1, (["a"], True)),
    (None, 0, ([], True)),
    ("d", 0, ([], True)),
    ("e", 0, ([], False)),
])
def test_tag_page(paged: RepoView, last: str | None, limit: int | None,
                  expected: tuple[list[str], bool]) -> None:
    assert paged.tag_page(last, limit) == expected


def test_tag_page_walks_every_tag_once(paged: RepoView) -> None:
    seen: list[str] = []
    last: str | None = None
    while True:
        page, more = paged.tag_page(last, 2)
        seen.extend(page)
        if not more:
            break
        last = page[-1]
    assert seen == ["a", "b", "c", "d", "e"]


def test_tag_page_of_empty_repository(store: Store) -> None:
    view = store.view([])
    assert view.tag_page(None, None) == ([], False)
    assert view.tag_page(None, 0) == ([], False)
    assert view.tag_page("x", 10) == ([], False)


# -- top level and children ------------------------------------------------------------


def test_top_level_first_entry_per_digest(store: Store) -> None:
    a, b = store.image("a"), store.image("b")
    first = tagged(a, "one")
    view = store.view([first, b, tagged(a, "two")])
    assert list(view.top_level) == [a["digest"], b["digest"]]
    assert view.top_level[a["digest"]] is first


def test_children_of_indexes(store: Store) -> None:
    amd, arm = store.image("amd64"), store.image("arm64")
    nested_child = store.image("nested")
    nested = store.add({"manifests": [nested_child]}, mt.OCI_INDEX)
    index = store.add({"manifests": [amd, arm, nested]}, mt.OCI_INDEX)
    plain = store.image("plain")
    view = store.view([tagged(index, "multi"), plain])
    assert set(view.children) == {amd["digest"], arm["digest"], nested["digest"], nested_child["digest"]}
    assert view.children[amd["digest"]]["size"] == amd["size"]
    assert view.is_child(nested_child["digest"])
    assert not view.is_child(plain["digest"])
    assert not view.is_child(index["digest"])
    manifest = view.manifest(nested_child["digest"])
    assert manifest is not None and manifest.digest() == Digest.parse(nested_child["digest"])


def test_no_children_without_an_index_and_no_loading(store: Store) -> None:
    view = store.view([tagged(store.image("a"), "a"), store.image("b")])
    assert view.children == {}
    assert store.loads == []


def test_index_with_missing_manifest_blob(store: Store) -> None:
    ghost = {"mediaType": mt.OCI_INDEX, "digest": str(Digest.of(b"ghost")), "size": 5}
    view = store.view([ghost])
    assert view.children == {}
    assert view.referenced_blobs == set()
    assert view.manifest(ghost["digest"]) is None


def test_manifest_lookup(store: Store) -> None:
    a = store.image("a")
    view = store.view([a])
    found = view.manifest(a["digest"])
    assert found is not None and found.config is not None
    assert view.manifest(str(Digest.of(b"unknown"))) is None


# -- referenced blobs ------------------------------------------------------------------


def test_referenced_blobs(store: Store) -> None:
    amd = store.image("amd64")
    index = store.add({"manifests": [amd]}, mt.OCI_INDEX)
    solo = store.image("solo")
    view = store.view([tagged(index, "multi"), solo])
    expected = {
        str(Digest.of(b"config amd64")), str(Digest.of(b"layer amd64")),
        str(Digest.of(b"config solo")), str(Digest.of(b"layer solo")),
        amd["digest"],
    }
    assert view.referenced_blobs == expected
    assert index["digest"] not in view.referenced_blobs


def test_subject_is_not_a_referenced_blob(store: Store) -> None:
    subject = desc(mt.OCI_MANIFEST, b"not stored")
    sig = store.image("sig", subject=subject)
    view = store.view([sig])
    assert subject["digest"] not in view.referenced_blobs


def test_cycle_between_indexes_terminates(store: Store) -> None:
    # A self-referencing index cannot exist by content, but a loader may return anything.
    a = store.image("a")
    index = store.add({"manifests": [a]}, mt.OCI_INDEX)
    view = store.view([index, index, a])
    assert set(view.children) == {a["digest"]}
    assert store.loads.count(a["digest"]) == 1


# -- referrers -------------------------------------------------------------------------


def test_referrers(store: Store) -> None:
    target = store.image("target")
    subject = {k: target[k] for k in ("mediaType", "digest", "size")}
    sbom_config = desc("application/vnd.example.sbom", b"{}")
    sig = store.add({"artifactType": "application/vnd.example.sig", "config": desc(mt.OCI_EMPTY, b"{}"),
                     "layers": [], "subject": subject, "annotations": {"k": "v"}})
    sbom = store.add({"config": sbom_config, "layers": [], "subject": subject})
    bare_index = store.add({"manifests": [], "subject": subject}, mt.OCI_INDEX)
    other = store.image("other", subject=desc(mt.OCI_MANIFEST, b"elsewhere"))
    view = store.view([tagged(target, "v1"), sig, sbom, bare_index, other])
    found = view.referrers(Digest.parse(target["digest"]))
    assert [d["digest"] for d in found] == sorted([sig["digest"], sbom["digest"], bare_index["digest"]])
    by_digest = {d["digest"]: d for d in found}
    assert by_digest[sig["digest"]] == {**sig, "artifactType": "application/vnd.example.sig",
                                        "annotations": {"k": "v"}}
    assert by_digest[sbom["digest"]] == {**sbom, "artifactType": "application/vnd.example.sbom"}
    assert by_digest[bare_index["digest"]] == bare_index
    assert view.referrers(Digest.of(b"nothing")) == []
    assert [d["digest"] for d in view.referrers(Digest.of(b"elsewhere"))] == [other["digest"]]


def test_referrers_inside_an_index_are_found(store: Store) -> None:
    target = store.image("target")
    sig = store.image("sig", subject=target, artifactType="application/x-sig")
    index = store.add({"manifests": [sig]}, mt.OCI_INDEX)
    view = store.view([target, index])
    assert [d["digest"] for d in view.referrers(Digest.parse(target["digest"]))] == [sig["digest"]]


def test_referrers_returns_a_copy(store: Store) -> None:
    target = store.image("target")
    store_sig = store.image("sig", subject=target)
    view = store.view([target, store_sig])
    view.referrers(Digest.parse(target["digest"])).clear()
    assert len(view.referrers(Digest.parse(target["digest"]))) == 1


# -- manifest cache --------------------------------------------------------------------


def test_manifest_cache_reads_once_and_evicts(store: Store) -> None:
    entries = [store.image(str(i)) for i in range(3)]
    cache = ManifestCache(capacity=2)
    reads: list[str] = []

    def reader(digest: str) -> Any:
        return lambda: reads.append(digest) or store.raw[digest][0]

    for entry in entries[:2]:
        assert cache.get(entry["digest"], mt.OCI_MANIFEST, reader(entry["digest"])) is not None
    cache.get(entries[0]["digest"], mt.OCI_MANIFEST, reader(entries[0]["digest"]))
    assert reads == [entries[0]["digest"], entries[1]["digest"]]
    cache.get(entries[2]["digest"], mt.OCI_MANIFEST, reader(entries[2]["digest"]))  # evicts entries[1]
    cache.get(entries[0]["digest"], mt.OCI_MANIFEST, reader(entries[0]["digest"]))
    cache.get(entries[1]["digest"], mt.OCI_MANIFEST, reader(entries[1]["digest"]))
    assert reads == [entries[0]["digest"], entries[1]["digest"], entries[2]["digest"], entries[1]["digest"]]


def test_manifest_cache_unreadable_is_none_and_not_cached() -> None:
    cache = ManifestCache()
    attempts: list[int] = []

    def broken() -> bytes:
        attempts.append(1)
        raise OSError("gone")

    assert cache.get("sha256:" + "a" * 64, mt.OCI_MANIFEST, broken) is None
    assert cache.get("sha256:" + "a" * 64, mt.OCI_MANIFEST, lambda: b"not json") is None
    assert cache.get("sha256:" + "a" * 64, mt.OCI_MANIFEST, broken) is None
    assert len(attempts) == 2
