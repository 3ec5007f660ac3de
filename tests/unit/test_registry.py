"""Tests for zotpy.registry: store routing, catalog merging, manifest validation and signals."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from blinker import Signal

from zotpy import signals
from zotpy.errors import (
    BlobUnknown,
    DigestInvalid,
    Invalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    UnsupportedMediaType,
)
from zotpy.locks import LockSet
from zotpy.meta.db import close_if_open, open_database
from zotpy.meta.storeindex import StoreIndex
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Manifest
from zotpy.registry import MAX_TAGS_PER_PUSH, Registry, StoreRouter
from zotpy.storage.drivers import LocalDriver
from zotpy.storage.imagestore import ImageStore

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
FOREIGN_TYPE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
CONFIG = b'{"os":"linux"}'
LAYER = b"layer bytes"


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[dict[str, ImageStore]]:
    """A default store and a sub-path store for the route ``m``, each with its own root."""
    indexes: list[StoreIndex] = []

    def build(name: str) -> ImageStore:
        private = tmp_path / name / "_zotpy"
        index = StoreIndex(open_database(str(private / "zotpy.db")))
        indexes.append(index)
        return ImageStore(LocalDriver(str(tmp_path / name)), index, LockSet(str(private / "locks")))

    yield {"default": build("default"), "m": build("sub")}
    for index in indexes:
        close_if_open(index.db)


@pytest.fixture
def registry(stores: dict[str, ImageStore]) -> Registry:
    return Registry(StoreRouter(stores["default"], {"m": stores["m"]}))


def desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data), **extra}


def upload(registry: Registry, repo: str, *blobs: bytes) -> None:
    for data in blobs:
        registry.upload_monolithic(repo, str(Digest.of(data)), [data])


def manifest_bytes(**extra: Any) -> bytes:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": desc(mt.OCI_CONFIG, CONFIG),
            "layers": [desc(LAYER_TYPE, LAYER)], **extra}
    return json.dumps(body).encode()


@contextmanager
def received(signal: Signal) -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append({"sender": sender, **kwargs})

    with signal.connected_to(receiver):
        yield calls


# -- routing and catalog ---------------------------------------------------------------


def test_store_router(stores: dict[str, ImageStore]) -> None:
    router = StoreRouter(stores["default"], {"m": stores["m"]})
    assert router.for_repo("m") is stores["m"]
    assert router.for_repo("m/x") is stores["m"]
    assert router.for_repo("m/x/y") is stores["m"]
    assert router.for_repo("mm/x") is stores["default"]
    assert router.for_repo("x/m") is stores["default"]
    assert router.for_repo("a") is stores["default"]
    assert router.all() == [stores["default"], stores["m"]]
    assert StoreRouter(stores["default"]).all() == [stores["default"]]


def test_operations_land_in_the_routed_store(tmp_path: Path, registry: Registry) -> None:
    upload(registry, "m/app", CONFIG)
    upload(registry, "app", LAYER)
    assert (tmp_path / "sub" / "m/app/blobs/sha256" / Digest.of(CONFIG).hex).exists()
    assert (tmp_path / "default" / "app/blobs/sha256" / Digest.of(LAYER).hex).exists()
    assert not (tmp_path / "default" / "m").exists()
    with pytest.raises(BlobUnknown):
        registry.blob_size("m/app", str(Digest.of(LAYER)))


@pytest.fixture
def catalog(registry: Registry) -> Registry:
    for repo in ["z", "a", "m/2", "n", "m/1", "m"]:
        upload(registry, repo, b"x")
    return registry


@pytest.mark.parametrize(("n", "last", "expected"), [
    (None, None, (["a", "m", "m/1", "m/2", "n", "z"], False)),
    (2, None, (["a", "m"], True)),
    (2, "m", (["m/1", "m/2"], True)),
    (2, "m/2", (["n", "z"], False)),
    (3, "m/1", (["m/2", "n", "z"], False)),
    (6, None, (["a", "m", "m/1", "m/2", "n", "z"], False)),
    (5, None, (["a", "m", "m/1", "m/2", "n"], True)),
    (100, None, (["a", "m", "m/1", "m/2", "n", "z"], False)),
    (1, "a", (["m"], True)),
    (1, "b", (["m"], True)),  # an unknown last
    (None, "m/1", (["m/2", "n", "z"], False)),
    (10, "z", ([], False)),
    (0, None, ([], True)),
])
def test_catalog_merges_stores(catalog: Registry, n: int | None, last: str | None,
                               expected: tuple[list[str], bool]) -> None:
    assert catalog.catalog(n, last) == expected


def test_catalog_pages_cover_everything_once(catalog: Registry) -> None:
    for n in (1, 2, 3, 4):
        seen: list[str] = []
        last: str | None = None
        while True:
            names, more = catalog.catalog(n, last)
            seen.extend(names)
            if not more:
                break
            last = names[-1]
        assert seen == ["a", "m", "m/1", "m/2", "n", "z"]


def test_catalog_of_empty_stores(registry: Registry) -> None:
    assert registry.catalog(None, None) == ([], False)
    assert registry.catalog(5, None) == ([], False)


@pytest.mark.parametrize("name", ["A", "a//b", "/a", "a/blobs", "..", "a" * 256, ""])
def test_invalid_names_are_refused(registry: Registry, name: str) -> None:
    digest = str(Digest.of(b"x"))
    calls = [
        lambda: registry.blob_size(name, digest),
        lambda: registry.start_upload(name),
        lambda: registry.upload_monolithic(name, digest, [b"x"]),
        lambda: registry.get_manifest(name, "latest"),
        lambda: registry.put_manifest(name, "latest", manifest_bytes(), mt.OCI_MANIFEST),
        lambda: registry.delete_manifest(name, "latest"),
        lambda: registry.delete_blob(name, digest),
        lambda: registry.tags(name, None, None),
        lambda: registry.referrers(name, digest, []),
    ]
    for call in calls:
        with pytest.raises(NameInvalid):
            call()


# -- manifest validation ---------------------------------------------------------------


def test_put_manifest_by_tag(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes()
    pushed = registry.put_manifest("r", "v1", raw, mt.OCI_MANIFEST)
    assert pushed.digest == Digest.of(raw)
    assert pushed.tags == ("v1",)
    assert pushed.subject is None
    stored = registry.get_manifest("r", "v1")
    assert (stored.raw, stored.digest, stored.media_type) == (raw, Digest.of(raw), mt.OCI_MANIFEST)
    assert registry.tags("r", None, None) == (["v1"], False)


def test_put_manifest_by_digest(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes()
    pushed = registry.put_manifest("r", str(Digest.of(raw)), raw, mt.OCI_MANIFEST)
    assert pushed.tags == ()
    assert registry.get_manifest("r", str(Digest.of(raw))).raw == raw
    assert registry.tags("r", None, None) == ([], False)


def test_put_manifest_by_sha512_digest(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes()
    digest = Digest.of(raw, "sha512")
    assert registry.put_manifest("r", str(digest), raw, mt.OCI_MANIFEST).digest == digest
    assert registry.get_manifest("r", str(digest)).digest == digest


@pytest.mark.parametrize("reference", [
    pytest.param(str(Digest.of(b"something else")), id="other-sha256"),
    pytest.param(str(Digest.of(b"something else", "sha512")), id="other-sha512"),
])
def test_put_manifest_digest_mismatch(registry: Registry, reference: str) -> None:
    upload(registry, "r", CONFIG, LAYER)
    with pytest.raises(DigestInvalid):
        registry.put_manifest("r", reference, manifest_bytes(), mt.OCI_MANIFEST)
    assert registry.tags("r", None, None) == ([], False)


def test_put_manifest_digest_of_reformatted_bytes_mismatches(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes()
    reformatted = json.dumps(json.loads(raw), indent=2).encode()
    with pytest.raises(DigestInvalid):
        registry.put_manifest("r", str(Digest.of(raw)), reformatted, mt.OCI_MANIFEST)


@pytest.mark.parametrize("reference", ["sha256:abc", "md5:" + "a" * 32, "sha256:" + "A" * 64])
def test_put_manifest_malformed_digest_reference(registry: Registry, reference: str) -> None:
    upload(registry, "r", CONFIG, LAYER)
    with pytest.raises(DigestInvalid):
        registry.put_manifest("r", reference, manifest_bytes(), mt.OCI_MANIFEST)


@pytest.mark.parametrize("missing", [CONFIG, LAYER])
def test_put_manifest_missing_blob(registry: Registry, missing: bytes) -> None:
    upload(registry, "r", *[b for b in (CONFIG, LAYER) if b != missing])
    with pytest.raises(ManifestBlobUnknown) as info:
        registry.put_manifest("r", "v1", manifest_bytes(), mt.OCI_MANIFEST)
    assert info.value.http_status == 400  # as zot and Distribution answer
    assert info.value.detail == {"digest": str(Digest.of(missing))}
    assert registry.tags("r", None, None) == ([], False)
    with pytest.raises(ManifestUnknown):
        registry.get_manifest("r", str(Digest.of(manifest_bytes())))


def test_put_manifest_blob_in_another_repository_is_missing(registry: Registry) -> None:
    upload(registry, "other", CONFIG, LAYER)
    with pytest.raises(ManifestBlobUnknown):
        registry.put_manifest("r", "v1", manifest_bytes(), mt.OCI_MANIFEST)


@pytest.mark.parametrize("size", [len(LAYER) - 1, len(LAYER) + 1, 0])
def test_put_manifest_wrong_size(registry: Registry, size: int) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes(layers=[desc(LAYER_TYPE, LAYER, size=size)])
    with pytest.raises(ManifestInvalid):
        registry.put_manifest("r", "v1", raw, mt.OCI_MANIFEST)


def test_put_manifest_foreign_layer_is_not_required(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    foreign = desc(FOREIGN_TYPE, b"elsewhere", urls=["https://example.com/layer.tar.gz"])
    raw = manifest_bytes(layers=[desc(LAYER_TYPE, LAYER), foreign])
    assert registry.put_manifest("r", "v1", raw, mt.OCI_MANIFEST).digest == Digest.of(raw)


def test_put_manifest_non_distributable_layer_without_urls_is_required(registry: Registry) -> None:
    upload(registry, "r", CONFIG)
    raw = manifest_bytes(layers=[desc(FOREIGN_TYPE, b"elsewhere")])
    with pytest.raises(ManifestBlobUnknown):
        registry.put_manifest("r", "v1", raw, mt.OCI_MANIFEST)


def test_put_manifest_with_missing_subject(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    subject = desc(mt.OCI_MANIFEST, b"not pushed yet")
    raw = manifest_bytes(subject=subject, artifactType="application/x-sig")
    pushed = registry.put_manifest("r", str(Digest.of(raw)), raw, mt.OCI_MANIFEST)
    assert pushed.subject == Digest.of(b"not pushed yet")
    found = registry.referrers("r", str(Digest.of(b"not pushed yet")), [])
    assert [d["digest"] for d in found] == [str(Digest.of(raw))]


def test_put_index(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    child = manifest_bytes()
    registry.put_manifest("r", str(Digest.of(child)), child, mt.OCI_MANIFEST)
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                        "manifests": [desc(mt.OCI_MANIFEST, child)]}).encode()
    assert registry.put_manifest("r", "multi", index, mt.OCI_INDEX).digest == Digest.of(index)
    assert registry.get_manifest("r", "multi").media_type == mt.OCI_INDEX


def test_put_index_with_missing_child(registry: Registry) -> None:
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                        "manifests": [desc(mt.OCI_MANIFEST, b"never pushed")]}).encode()
    with pytest.raises(ManifestBlobUnknown):
        registry.put_manifest("r", "multi", index, mt.OCI_INDEX)


def test_put_manifest_media_types(registry: Registry, stores: dict[str, ImageStore]) -> None:
    upload(registry, "r", CONFIG, LAYER)
    docker = manifest_bytes(mediaType=mt.DOCKER_MANIFEST)
    with pytest.raises(UnsupportedMediaType):
        registry.put_manifest("r", "v1", docker, mt.DOCKER_MANIFEST)
    with pytest.raises(UnsupportedMediaType):
        registry.put_manifest("r", "v1", manifest_bytes(), "application/json")
    compat = Registry(StoreRouter(stores["default"]), docker_compat=True)
    assert compat.put_manifest("r", "v1", docker, mt.DOCKER_MANIFEST).digest == Digest.of(docker)
    assert compat.get_manifest("r", "v1").media_type == mt.DOCKER_MANIFEST


@pytest.mark.parametrize("tag", ["", ".hidden", "a" * 129, "a/b", "sp ace"])
def test_put_manifest_invalid_tag_reference(registry: Registry, tag: str) -> None:
    upload(registry, "r", CONFIG, LAYER)
    with pytest.raises(ManifestInvalid):
        registry.put_manifest("r", tag, manifest_bytes(), mt.OCI_MANIFEST)


def test_put_manifest_extra_tags(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes()
    pushed = registry.put_manifest("r", str(Digest.of(raw)), raw, mt.OCI_MANIFEST, ["b", "a", "b"])
    assert pushed.tags == ("b", "a")
    assert registry.tags("r", None, None) == (["a", "b"], False)


@pytest.mark.parametrize("tags", [["ok", "-bad"], [""], ["a" * 129], ["x:y"]])
def test_put_manifest_extra_tags_are_validated(registry: Registry, tags: list[str]) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes()
    with pytest.raises(ManifestInvalid):
        registry.put_manifest("r", str(Digest.of(raw)), raw, mt.OCI_MANIFEST, tags)
    assert registry.tags("r", None, None) == ([], False)
    with pytest.raises(ManifestUnknown):
        registry.get_manifest("r", str(Digest.of(raw)))


def test_put_manifest_too_many_extra_tags(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes()
    tags = [f"t{i}" for i in range(MAX_TAGS_PER_PUSH)]
    assert len(registry.put_manifest("r", str(Digest.of(raw)), raw, mt.OCI_MANIFEST, tags).tags) == len(tags)
    with pytest.raises(Invalid) as info:
        registry.put_manifest("r", str(Digest.of(raw)), raw, mt.OCI_MANIFEST, [*tags, "one-more"])
    assert info.value.http_status == 414


# -- reading and deleting --------------------------------------------------------------


@pytest.mark.parametrize("reference", ["-bad", "a" * 129, "sp ace"])
def test_get_manifest_invalid_tag(registry: Registry, reference: str) -> None:
    upload(registry, "r", CONFIG)
    with pytest.raises(ManifestUnknown):
        registry.get_manifest("r", reference)


def test_get_manifest_invalid_digest(registry: Registry) -> None:
    upload(registry, "r", CONFIG)
    with pytest.raises(DigestInvalid):
        registry.get_manifest("r", "sha256:short")


def test_unknown_repository(registry: Registry) -> None:
    with pytest.raises(NameUnknown):
        registry.get_manifest("nope", "latest")
    with pytest.raises(NameUnknown):
        registry.delete_manifest("nope", "latest")
    with pytest.raises(NameUnknown):
        registry.delete_blob("nope", str(Digest.of(b"x")))
    with pytest.raises(NameUnknown):
        registry.tags("nope", None, None)
    assert registry.referrers("nope", str(Digest.of(b"x")), []) == []


def test_delete_manifest_and_blob(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes()
    registry.put_manifest("r", "v1", raw, mt.OCI_MANIFEST)
    assert registry.delete_manifest("r", str(Digest.of(raw))) == Digest.of(raw)
    registry.delete_blob("r", str(Digest.of(LAYER)))
    with pytest.raises(BlobUnknown):
        registry.blob_size("r", str(Digest.of(LAYER)))


def test_referrers_filtered_by_artifact_type(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    target = manifest_bytes()
    registry.put_manifest("r", "v1", target, mt.OCI_MANIFEST)
    subject = desc(mt.OCI_MANIFEST, target)
    sig = manifest_bytes(subject=subject, artifactType="application/x-sig")
    sbom = manifest_bytes(subject=subject, artifactType="application/x-sbom")
    for raw in (sig, sbom):
        registry.put_manifest("r", str(Digest.of(raw)), raw, mt.OCI_MANIFEST)
    everything = registry.referrers("r", str(Digest.of(target)), [])
    assert sorted(d["digest"] for d in everything) == sorted([str(Digest.of(sig)), str(Digest.of(sbom))])
    only_sig = registry.referrers("r", str(Digest.of(target)), ["application/x-sig"])
    assert [d["digest"] for d in only_sig] == [str(Digest.of(sig))]
    assert registry.referrers("r", str(Digest.of(target)), ["application/x-none"]) == []
    with pytest.raises(DigestInvalid):
        registry.referrers("r", "sha256:nope", [])


# -- uploads ---------------------------------------------------------------------------


def test_start_upload_mounts_within_a_store(registry: Registry) -> None:
    upload(registry, "a", LAYER)
    started = registry.start_upload("b", mount=str(Digest.of(LAYER)), from_repo="a")
    assert started.digest == Digest.of(LAYER) and started.session_id is None
    assert registry.blob_size("b", str(Digest.of(LAYER)))[1] == len(LAYER)


def test_start_upload_mount_from_the_dedupe_index(registry: Registry) -> None:
    upload(registry, "a", LAYER)
    started = registry.start_upload("b", mount=str(Digest.of(LAYER)))
    assert started.digest == Digest.of(LAYER)


def test_start_upload_never_mounts_across_stores(registry: Registry) -> None:
    upload(registry, "a", LAYER)
    started = registry.start_upload("m/b", mount=str(Digest.of(LAYER)), from_repo="a")
    assert started.digest is None and started.session_id is not None
    with pytest.raises(BlobUnknown):
        registry.blob_size("m/b", str(Digest.of(LAYER)))


def test_start_upload_mount_of_unknown_blob_opens_a_session(registry: Registry) -> None:
    upload(registry, "a", LAYER)
    started = registry.start_upload("b", mount=str(Digest.of(b"unknown")), from_repo="a")
    assert started.digest is None and started.session_id is not None
    assert registry.upload_size("b", started.session_id) == 0


def test_start_upload_invalid_mount_digest(registry: Registry) -> None:
    with pytest.raises(DigestInvalid):
        registry.start_upload("b", mount="sha256:nope")


def test_chunked_upload_through_the_registry(registry: Registry) -> None:
    session = registry.start_upload("r").session_id
    assert session is not None
    assert registry.upload_chunk("r", session, [b"abc"], 0) == 3
    with pytest.raises(DigestInvalid):
        registry.finish_upload("r", session, None, None, None)
    with pytest.raises(DigestInvalid):
        registry.finish_upload("r", session, "", None, None)
    digest = Digest.of(b"abcdef")
    assert registry.finish_upload("r", session, str(digest), [b"def"], 3) == digest


# -- signals ---------------------------------------------------------------------------


def test_manifest_pushed_signal(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes()
    with received(signals.manifest_pushed) as calls:
        registry.put_manifest("r", "v1", raw, mt.OCI_MANIFEST)
        registry.put_manifest("r", str(Digest.of(raw)), raw, mt.OCI_MANIFEST, ["x", "y"])
    assert [(c["repo"], c["digest"], c["tags"]) for c in calls] == [
        ("r", Digest.of(raw), ("v1",)), ("r", Digest.of(raw), ("x", "y"))]
    assert all(c["sender"] is registry and c["manifest"].raw == raw for c in calls)


def test_no_pushed_signal_when_the_push_fails(registry: Registry) -> None:
    with received(signals.manifest_pushed) as calls:
        with pytest.raises(ManifestBlobUnknown):
            registry.put_manifest("r", "v1", manifest_bytes(), mt.OCI_MANIFEST)
        with pytest.raises(DigestInvalid):
            registry.put_manifest("r", str(Digest.of(b"x")), manifest_bytes(), mt.OCI_MANIFEST)
    assert calls == []


def test_blob_uploaded_signal(registry: Registry) -> None:
    with received(signals.blob_uploaded) as calls:
        upload(registry, "r", b"mono")
        session = registry.start_upload("r").session_id
        assert session is not None
        registry.finish_upload("r", session, str(Digest.of(b"chunked")), [b"chunked"], 0)
        with pytest.raises(DigestInvalid):
            registry.upload_monolithic("r", str(Digest.of(b"other")), [b"never"])
    assert [(c["repo"], c["digest"], c["size"]) for c in calls] == [
        ("r", Digest.of(b"mono"), 4), ("r", Digest.of(b"chunked"), 7)]


def test_pulled_and_deleted_signals(registry: Registry) -> None:
    upload(registry, "r", CONFIG, LAYER)
    raw = manifest_bytes()
    registry.put_manifest("r", "v1", raw, mt.OCI_MANIFEST)
    with received(signals.manifest_pulled) as pulled, received(signals.manifest_deleted) as deleted:
        registry.get_manifest("r", "v1")
        registry.get_manifest("r", "v1", pull=False)
        registry.delete_manifest("r", "v1")
    assert [(c["repo"], c["digest"], c["reference"]) for c in pulled] == [("r", Digest.of(raw), "v1")]
    assert [(c["repo"], c["digest"], c["reference"]) for c in deleted] == [("r", Digest.of(raw), "v1")]


# -- manifest hooks: a failing metadata write undoes the storage change it follows ------------


class Recorder:
    """Hooks that record calls and fail when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = False

    def _maybe_fail(self) -> None:
        if self.fail:
            raise RuntimeError("metadata database unavailable")

    def on_put(self, repo: str, digest: Digest, manifest: Manifest, tags: tuple[str, ...],
               read_blob: Callable[[Digest], bytes]) -> None:
        assert manifest.config is not None
        assert read_blob(manifest.config.digest) == CONFIG
        self.calls.append(("put", repo, ",".join(tags)))
        self._maybe_fail()

    def on_delete(self, repo: str, digest: Digest, reference: str) -> None:
        self.calls.append(("delete", repo, reference))
        self._maybe_fail()

    def on_get(self, repo: str, digest: Digest, reference: str) -> None:
        self.calls.append(("get", repo, reference))


def index_bytes(registry: Registry, repo: str) -> bytes:
    path = registry.stores.for_repo(repo).driver.local_path(f"{repo}/index.json")
    assert path is not None
    return Path(path).read_bytes()


def test_hooks_see_put_get_delete(registry: Registry) -> None:
    hooks = Recorder()
    registry.add_hooks(hooks)
    upload(registry, "r", CONFIG, LAYER)
    registry.put_manifest("r", "v1", manifest_bytes(), mt.OCI_MANIFEST)
    registry.get_manifest("r", "v1")
    registry.get_manifest("r", "v1", pull=False)
    registry.delete_manifest("r", "v1")
    assert hooks.calls == [("put", "r", "v1"), ("get", "r", "v1"), ("delete", "r", "v1")]


def test_failed_put_hook_leaves_storage_as_it_was(registry: Registry) -> None:
    hooks = Recorder()
    registry.add_hooks(hooks)
    upload(registry, "r", CONFIG, LAYER)
    registry.put_manifest("r", "v1", manifest_bytes(), mt.OCI_MANIFEST)
    before = index_bytes(registry, "r")
    hooks.fail = True
    other = manifest_bytes(annotations={"k": "v"})
    with pytest.raises(RuntimeError):
        registry.put_manifest("r", "v1", other, mt.OCI_MANIFEST)
    assert index_bytes(registry, "r") == before
    assert registry.get_manifest("r", "v1").raw == manifest_bytes()
    with pytest.raises(ManifestUnknown):
        registry.get_manifest("r", str(Digest.of(other)))
    assert not registry.stores.for_repo("r").has_blob("r", Digest.of(other))


def test_failed_delete_hook_keeps_the_manifest(registry: Registry) -> None:
    hooks = Recorder()
    registry.add_hooks(hooks)
    upload(registry, "r", CONFIG, LAYER)
    pushed = registry.put_manifest("r", "v1", manifest_bytes(), mt.OCI_MANIFEST)
    hooks.fail = True
    with pytest.raises(RuntimeError):
        registry.delete_manifest("r", str(pushed.digest))
    assert registry.get_manifest("r", "v1").digest == pushed.digest
    assert registry.stores.for_repo("r").has_blob("r", pushed.digest)
