"""Fixtures for the search extension's API tests.

An app with ``extensions.search`` enabled over a temporary root, driven through the Flask test client;
a small GraphQL client for ``/v2/_zot/ext/search``; builders for images, indexes, artifacts and the
three kinds of signatures zot recognises; and ``world``, one registry populated once per session with
images whose every searchable property is known in advance, for the read-only query tests.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any
from urllib.parse import quote

import pytest

from helpers.layout import (
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Blob,
    Image,
    Index,
    build_artifact,
    build_index,
    canonical_json,
)
from oci_api_client import Registry
from zotpy.app import create_app, prepare
from zotpy.config.model import Config, GlobalStorageConfig

SEARCH = "/v2/_zot/ext/search"
MGMT = "/v2/_zot/ext/mgmt"
DISCOVER = "/v2/_oci/ext/discover"
DB_DIR = "_zotpy"
DB_FILES = ("zotpy.db", "zotpy.db-wal", "zotpy.db-shm")

COSIGN_SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
NOTATION_SIG_TYPE = "application/vnd.cncf.notary.signature"
COSIGN_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
SBOM_TYPE = "application/vnd.zotpy.sbom.v1+json"
ATTESTATION_TYPE = "application/vnd.zotpy.attestation.v1+json"
MODEL_TYPE = "application/vnd.zotpy.model.v1"

ANNOTATION = "org.opencontainers.image."

IMAGE_FIELDS = """
  RepoName Tag Digest MediaType Size DownloadCount LastUpdated PushTimestamp TaggedTimestamp
  LastPullTimestamp Description IsSigned SignatureInfo { Tool IsTrusted Author } Licenses Labels Title
  Source Documentation Vendor Authors IsDeletable
  Referrers { MediaType ArtifactType Size Digest Annotations { Key Value } }
  Manifests {
    Digest ConfigDigest LastUpdated Size IsSigned DownloadCount ArtifactType
    Platform { Os Arch }
    SignatureInfo { Tool IsTrusted Author }
    Layers { Size Digest }
    History { Layer { Size Digest } HistoryDescription { Created CreatedBy Author Comment EmptyLayer } }
    Referrers { Digest ArtifactType }
  }
"""

REPO_FIELDS = """
  Name LastUpdated Size Platforms { Os Arch } Vendors DownloadCount StarCount IsBookmarked IsStarred Rank
  NewestImage { RepoName Tag Digest LastUpdated }
"""


# -- apps -----------------------------------------------------------------------------------------


def search_config(root: Path, *, search: bool = True) -> Config:
    """A config storing under ``root`` with the search extension on (or, with ``search=False``, absent)."""
    extensions = {"search": MappingProxyType({"enable": True})} if search else {}
    return Config(
        storage=GlobalStorageConfig(root_directory=str(root), gc=False),
        extensions=MappingProxyType(extensions),
    )


def start_app(root: Path, *, search: bool = True, forbidden: Iterable[str] = ()) -> Registry:
    """Run the one-time startup work over ``root`` and build an app on it, as a server start would."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = search_config(root, search=search)
    prepare(cfg)
    app = create_app(cfg)
    app.testing = True
    return Registry(app, root, forbidden=list(forbidden))


def delete_database(root: Path) -> list[Path]:
    """Remove the embedded database (and its WAL files) under ``root``; the paths that were removed."""
    removed = []
    for name in DB_FILES:
        path = root / DB_DIR / name
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


# -- GraphQL --------------------------------------------------------------------------------------


class GraphQLError(AssertionError):
    pass


class GraphQL:
    """Queries ``/v2/_zot/ext/search`` through the Flask test client; never accepts a 5xx."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg

    def raw(
        self, query: str, variables: Mapping[str, Any] | None = None, *, method: str = "POST"
    ) -> tuple[int, dict[str, Any]]:
        if method == "GET":
            path = f"{SEARCH}?query={quote(query)}"
            if variables:
                path += f"&variables={quote(json.dumps(variables))}"
            resp = self.reg.request("GET", path, check=False)
        else:
            body: dict[str, Any] = {"query": query}
            if variables is not None:
                body["variables"] = dict(variables)
            resp = self.reg.request(
                "POST", SEARCH, data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"}, check=False,
            )
        return check_graphql_response(resp, f"{method} {query[:200]!r}")

    def data(self, query: str, variables: Mapping[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """The ``data`` of a query that must succeed without any error."""
        status, doc = self.raw(query, variables, **kw)
        if doc.get("errors") or status != 200:
            raise GraphQLError(f"query failed ({status}): {query}\nvariables={variables}\n{doc}")
        assert isinstance(doc.get("data"), dict), doc
        return doc["data"]

    def errors(self, query: str, variables: Mapping[str, Any] | None = None, **kw: Any) -> list[dict]:
        """The ``errors`` of a query that must fail; each has a non-empty message."""
        _status, doc = self.raw(query, variables, **kw)
        errors = doc.get("errors")
        assert errors, f"expected GraphQL errors for {query!r} {variables}, got {doc}"
        for error in errors:
            assert isinstance(error.get("message"), str) and error["message"], error
        return errors


def check_graphql_response(resp: Any, what: str) -> tuple[int, dict[str, Any]]:
    """A GraphQL answer: never 5xx, always a JSON object with ``data`` and/or ``errors``."""
    body = resp.get_data()
    assert resp.status_code < 500, f"{what} -> {resp.status_code} {body[:500]!r}"
    assert resp.status_code != 404, f"{what} -> 404: the search endpoint is not served {body[:200]!r}"
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise AssertionError(f"{what} -> {resp.status_code}, not JSON: {body[:300]!r}") from exc
    assert isinstance(doc, dict), doc
    assert "data" in doc or "errors" in doc, doc
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    return resp.status_code, doc


def messages(errors: list[dict]) -> str:
    return " | ".join(e.get("message", "") for e in errors)


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def wait_for(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Call ``check`` until it returns without an AssertionError (batched counters may lag a little)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


# -- building images ------------------------------------------------------------------------------


def layer(name: str, repeat: int = 16) -> Blob:
    """A small layer blob, distinct per ``name`` (the registry does not look inside layers)."""
    return Blob(OCI_LAYER_GZIP, f"zotpy search test layer {name}\n".encode() * repeat)


def image(
    layers: Iterable[Blob],
    *,
    created: str,
    arch: str = "amd64",
    os_name: str = "linux",
    variant: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    subject: Image | None = None,
    empty_layer_history: str | None = None,
) -> Image:
    """An OCI image whose config has ``created``, the platform, labels and one history entry per layer.

    ``empty_layer_history`` appends a history entry without a layer (``empty_layer: true``).
    """
    layers = tuple(layers)
    history: list[dict[str, Any]] = [
        {"created": created, "created_by": f"ADD layer {i}", "author": "zotpy tests", "comment": f"c{i}"}
        for i in range(len(layers))
    ]
    if empty_layer_history:
        history.append({"created": created, "created_by": empty_layer_history, "empty_layer": True})
    config_doc: dict[str, Any] = {
        "created": created,
        "architecture": arch,
        "os": os_name,
        "config": {"Labels": dict(labels or {}), "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [b.digest for b in layers]},
        "history": history,
    }
    if variant:
        config_doc["variant"] = variant
    config = Blob(OCI_CONFIG, canonical_json(config_doc))
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [b.descriptor() for b in layers],
    }
    if annotations:
        manifest_doc["annotations"] = dict(annotations)
    if subject is not None:
        manifest_doc["subject"] = subject.manifest.descriptor()
    platform = {"architecture": arch, "os": os_name}
    if variant:
        platform["variant"] = variant
    return Image(Blob(OCI_MANIFEST, canonical_json(manifest_doc)), config, layers, platform)


def index(images: Iterable[Image], annotations: Mapping[str, str] | None = None) -> Index:
    return build_index(list(images), annotations=annotations)


def artifact(
    files: Mapping[str, bytes],
    *,
    artifact_type: str,
    subject: Image | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    return build_artifact(files, artifact_type=artifact_type, subject=subject, annotations=annotations)


def image_size(item: Image | Index) -> int:
    """zot's ImageSummary.Size: manifest + config + layers; for an index the sum over its images."""
    if isinstance(item, Index):
        return sum(image_size(child) for child in item.images)
    return item.manifest.size + item.config.size + sum(b.size for b in item.layers)


def repo_size(items: Iterable[Image | Index]) -> int:
    """zot's RepoSummary.Size: every distinct blob (manifest, index, config, layer) of the tagged images."""
    blobs: dict[str, int] = {}
    for item in items:
        blobs[item.manifest.digest] = item.manifest.size
        for blob in item.blobs:
            blobs[blob.digest] = blob.size
    return sum(blobs.values())


def cosign_payload(signed_digest: str) -> bytes:
    return canonical_json({
        "critical": {
            "identity": {"docker-reference": "localhost/zotpy"},
            "image": {"docker-manifest-digest": signed_digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    })


def cosign_tag_signature(signed: Image | Index) -> tuple[str, Image]:
    """A cosign signature in the tag scheme: tag ``sha256-<hex>.sig`` holding a simplesigning layer."""
    payload = Blob(COSIGN_LAYER, cosign_payload(signed.digest),
                   annotations={"dev.cosignproject.cosign/signature": "MEUCIQDzotpytestsignature"})
    config = Blob(OCI_CONFIG, canonical_json({
        "architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [payload.digest]},
    }))
    manifest = Blob(OCI_MANIFEST, canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config.descriptor(), "layers": [payload.descriptor()],
    }))
    tag = signed.digest.replace(":", "-") + ".sig"
    return tag, Image(manifest, config, (payload,))


def cosign_referrer_signature(signed: Image) -> Image:
    """A cosign signature stored as an OCI 1.1 referrer (artifactType of cosign signatures)."""
    payload = Blob(COSIGN_LAYER, cosign_payload(signed.digest),
                   annotations={"dev.cosignproject.cosign/signature": "MEUCIQDzotpyreferrersignature"})
    return _referrer(signed, COSIGN_SIG_TYPE, payload)


def notation_signature(signed: Image) -> Image:
    """A notation signature: an OCI referrer of type ``application/vnd.cncf.notary.signature``."""
    envelope = Blob("application/jose+json", b'{"payload":"zotpy","protected":"e30","signature":"c2ln"}')
    return _referrer(signed, NOTATION_SIG_TYPE, envelope,
                     annotations={"io.cncf.notary.x509chain.thumbprint#S256": '["0000"]'})


def _referrer(
    subject: Image, artifact_type: str, blob: Blob, annotations: Mapping[str, str] | None = None
) -> Image:
    config = Blob(OCI_EMPTY, EMPTY_JSON)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.descriptor(),
        "layers": [blob.descriptor()],
        "subject": subject.manifest.descriptor(),
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return Image(Blob(OCI_MANIFEST, canonical_json(doc)), config, (blob,))


def push(reg: Registry, repo: str, item: Image | Index, ref: str | None = None) -> str:
    """Push the blobs, child manifests and manifest of ``item`` through the API; its digest."""
    if isinstance(item, Index):
        for child in item.images:
            push(reg, repo, child)
    else:
        for blob in item.blobs:
            reg.push_blob(repo, blob.data)
    resp = reg.put_manifest(repo, ref or item.digest, item.manifest.data, item.manifest.media_type)
    assert resp.status_code == 201, (repo, ref, resp.status_code, resp.get_data())
    assert resp.headers.get("Docker-Content-Digest") == item.digest
    return item.digest


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kit() -> ModuleType:
    """This module: its builders, query fragments, names and expectations, for the test modules."""
    return _THIS


@pytest.fixture
def search_registry(tmp_path: Path) -> Callable[..., tuple[Registry, GraphQL]]:
    """Start an app (search on by default) over ``root`` (default ``tmp_path/"root"``)."""

    def make(root: Path | None = None, *, search: bool = True) -> tuple[Registry, GraphQL]:
        reg = start_app(root or tmp_path / "root", search=search, forbidden=[str(tmp_path)])
        return reg, GraphQL(reg)

    return make


@dataclass
class World:
    """A registry populated once, with the facts the tests expect from it."""

    reg: Registry
    gql: GraphQL
    root: Path
    images: dict[tuple[str, str], Image | Index] = field(default_factory=dict)
    layers: dict[str, Blob] = field(default_factory=dict)
    created: dict[tuple[str, str], str] = field(default_factory=dict)
    referrers: dict[str, Image] = field(default_factory=dict)
    signatures: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    downloads: dict[tuple[str, str], int] = field(default_factory=dict)

    def repos(self) -> list[str]:
        return sorted({repo for repo, _tag in self.images})

    def tagged(self, repo: str) -> dict[str, Image | Index]:
        return {tag: item for (r, tag), item in self.images.items() if r == repo}

    def digest(self, repo: str, tag: str) -> str:
        return self.images[(repo, tag)].digest


BASE = "zotpy/base"
DERIVED = "zotpy/derived"
UNRELATED = "zotpy/unrelated"
MULTI = "zotpy/multi"
ARTIFACTS = "zotpy/artifacts"
BASEMENT = "zotpy/basement"
DATABASE = "tools/database"

BASE_ANNOTATIONS = {
    f"{ANNOTATION}title": "Base image",
    f"{ANNOTATION}description": "The base of the search tests",
    f"{ANNOTATION}vendor": "Zotpy Tests",
    f"{ANNOTATION}licenses": "Apache-2.0",
    f"{ANNOTATION}source": "https://example.com/base.git",
    f"{ANNOTATION}documentation": "https://example.com/base/docs",
    f"{ANNOTATION}authors": "tests@example.com",
}
OLD_BASE_LABELS = {
    f"{ANNOTATION}title": "Old base",
    f"{ANNOTATION}description": "Described by labels only",
    f"{ANNOTATION}vendor": "Label Vendor",
    f"{ANNOTATION}licenses": "MIT",
    f"{ANNOTATION}source": "https://example.com/old.git",
    f"{ANNOTATION}documentation": "https://example.com/old/docs",
    f"{ANNOTATION}authors": "labels@example.com",
}


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The session's read-only registry, populated by ``populate``."""
    root = tmp_path_factory.mktemp("search-world") / "root"
    return populate(start_app(root), root)


def populate(reg: Registry, root: Path) -> World:
    """Seven repositories pushed through the API (see the module constants), pulled a known number of times.

    * ``zotpy/base``: ``0.9`` (layer A; described by config labels), ``1.0`` (layers A, B; every OCI
      annotation), signed by a cosign OCI referrer; ``1.0`` also has an SBOM and an attestation referrer.
    * ``zotpy/derived:2.0`` (layers A, B, C; ppc64le), signed with a cosign ``sha256-<hex>.sig`` tag.
    * ``zotpy/unrelated:1.0`` (layer D; windows), signed by notation.
    * ``zotpy/multi:v1``: an index over linux amd64, arm64/v8 and arm/v7; unsigned.
    * ``zotpy/artifacts:model``: an artifact of type ``application/vnd.zotpy.model.v1``.
    * ``zotpy/basement:1`` and ``tools/database:1``: more names containing "base", for ranking.
    """
    w = World(reg=reg, gql=GraphQL(reg), root=root)
    la, lb, lc, ld = (layer(n) for n in "ABCD")
    w.layers = {"A": la, "B": lb, "C": lc, "D": ld}

    def add(repo: str, tag: str, item: Image | Index, created: str | None = None) -> None:
        push(reg, repo, item, tag)
        w.images[(repo, tag)] = item
        if created:
            w.created[(repo, tag)] = created

    add(BASE, "0.9", image([la], created="2023-06-01T00:00:00Z", labels=OLD_BASE_LABELS),
        "2023-06-01T00:00:00Z")
    add(BASE, "1.0", image([la, lb], created="2024-01-01T00:00:00Z", annotations=BASE_ANNOTATIONS,
                           labels={"maintainer": "zotpy"}, empty_layer_history='CMD ["sh"]'),
        "2024-01-01T00:00:00Z")
    add(DERIVED, "2.0", image([la, lb, lc], created="2024-03-01T00:00:00Z", arch="ppc64le",
                              annotations={f"{ANNOTATION}vendor": "Derived Vendor"}),
        "2024-03-01T00:00:00Z")
    add(UNRELATED, "1.0", image([ld], created="2024-02-01T00:00:00Z", os_name="windows"),
        "2024-02-01T00:00:00Z")
    multi = index([
        image([layer(f"multi-{arch}-{variant}")], created="2024-04-01T00:00:00Z", arch=arch, variant=variant)
        for arch, variant in (("amd64", None), ("arm64", "v8"), ("arm", "v7"))
    ])
    add(MULTI, "v1", multi, "2024-04-01T00:00:00Z")
    add(ARTIFACTS, "model", artifact({"model.bin": b"weights" * 10}, artifact_type=MODEL_TYPE))
    add(BASEMENT, "1", image([layer("basement")], created="2023-01-01T00:00:00Z"), "2023-01-01T00:00:00Z")
    add(DATABASE, "1", image([layer("database")], created="2022-01-01T00:00:00Z"), "2022-01-01T00:00:00Z")

    base10 = w.images[(BASE, "1.0")]
    assert isinstance(base10, Image)
    sbom = artifact({"sbom.json": b'{"packages":[]}'}, artifact_type=SBOM_TYPE, subject=base10,
                    annotations={"org.zotpy.kind": "sbom"})
    attestation = artifact({"att.json": b'{"predicate":{}}'}, artifact_type=ATTESTATION_TYPE, subject=base10)
    for name, item in (("sbom", sbom), ("attestation", attestation)):
        push(reg, BASE, item)
        w.referrers[name] = item

    push(reg, BASE, cosign_referrer_signature(base10))
    w.signatures[(BASE, "1.0")] = ("cosign",)
    derived = w.images[(DERIVED, "2.0")]
    sig_tag, sig = cosign_tag_signature(derived)
    push(reg, DERIVED, sig, sig_tag)
    w.signatures[(DERIVED, "2.0")] = ("cosign",)
    unrelated = w.images[(UNRELATED, "1.0")]
    assert isinstance(unrelated, Image)
    push(reg, UNRELATED, notation_signature(unrelated))
    w.signatures[(UNRELATED, "1.0")] = ("notation",)

    # Pulls: GET counts, HEAD does not.
    for (repo, tag), count in {(MULTI, "v1"): 3, (BASE, "1.0"): 2, (UNRELATED, "1.0"): 1}.items():
        for _ in range(count):
            assert reg.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": _ACCEPT}).status_code == 200
        assert reg.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": _ACCEPT}).status_code == 200
        w.downloads[(repo, tag)] = count
    return w


_ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"


# -- expectations ---------------------------------------------------------------------------------


def platform_of(item: Image) -> dict[str, str]:
    """zot's Platform: ``Arch`` carries the variant (``arm64/v8``)."""
    arch = item.platform.get("architecture", "")
    if item.platform.get("variant"):
        arch = f"{arch}/{item.platform['variant']}"
    return {"Os": item.platform.get("os", ""), "Arch": arch}


def expected_manifest(item: Image) -> dict[str, Any]:
    """The ManifestSummary facts of one image manifest that do not depend on time or pulls."""
    doc = item.manifest.json()
    return {
        "Digest": item.digest,
        "ConfigDigest": item.config.digest,
        "Size": str(image_size(item)),
        "Layers": [{"Digest": b.digest, "Size": str(b.size)} for b in item.layers],
        "ArtifactType": doc.get("artifactType") or doc["config"]["mediaType"],
    }


def check_image_summary(summary: Mapping[str, Any], repo: str, tag: str, item: Image | Index) -> None:
    """Compare an ImageSummary with what was pushed as ``repo:tag``."""
    assert summary["RepoName"] == repo, summary
    assert summary["Tag"] == tag, summary
    assert summary["Digest"] == item.digest, summary
    assert summary["MediaType"] == item.manifest.media_type, summary
    assert summary["Size"] == str(image_size(item)), (repo, tag, summary["Size"], image_size(item))
    children = item.images if isinstance(item, Index) else (item,)
    manifests = summary["Manifests"]
    assert [m["Digest"] for m in manifests] == [c.digest for c in children], manifests
    for got, child in zip(manifests, children, strict=True):
        want = expected_manifest(child)
        assert {k: got[k] for k in want} == want, (repo, tag, got)
        if child.config.media_type == OCI_CONFIG:
            assert got["Platform"] == platform_of(child), got


_THIS = sys.modules[__name__]
