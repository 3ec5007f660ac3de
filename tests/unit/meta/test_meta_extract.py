"""Tests for zotpy.meta.extract: what the metadata database records of a manifest."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from zotpy.errors import BlobUnknown
from zotpy.meta.extract import (
    COSIGN_ARTIFACT_TYPE,
    NOTATION_ARTIFACT_TYPE,
    extract,
    is_referrers_tag,
    parse_time,
    signature_of,
)
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Manifest, parse_stored


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}


def manifest(config: bytes, layers: list[bytes], *, config_type: str = mt.OCI_CONFIG,
             **extra: Any) -> Manifest:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": descriptor(config_type, config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer) for layer in layers],
            **extra}
    return parse_stored(json.dumps(body).encode(), mt.OCI_MANIFEST)


def reader(*blobs: bytes) -> Any:
    stored = {sha(blob): blob for blob in blobs}

    def read(digest: Digest) -> bytes:
        if str(digest) not in stored:
            raise BlobUnknown()
        return stored[str(digest)]

    return read


CONFIG = json.dumps({
    "os": "linux", "architecture": "arm", "variant": "v7", "created": "2024-02-03T04:05:06.123456789Z",
    "config": {"Labels": {"org.opencontainers.image.vendor": "label-vendor", "n": 1}},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD x", "author": "me"},
                {"created_by": "ENV A=1", "empty_layer": True, "comment": "c"}],
}).encode()


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-01-01T00:00:00Z", 1704067200.0),
    ("2024-01-01T00:00:00.5Z", 1704067200.5),
    ("2024-01-01T00:00:00.123456789Z", 1704067200.123456),
    ("2024-01-01T01:00:00+01:00", 1704067200.0),
    ("2024-01-01T00:00:00", 1704067200.0),
    ("0001-01-01T00:00:00Z", None),
    ("yesterday", None),
    ("", None),
    (12, None),
])
def test_parse_time(text: Any, expected: float | None) -> None:
    assert parse_time(text) == (pytest.approx(expected) if expected is not None else None)


def test_an_image_records_its_config_layers_and_sizes() -> None:
    layers = [b"one", b"two!"]
    parsed = manifest(CONFIG, layers, annotations={"org.opencontainers.image.title": "t"})
    record = extract("sha256:" + "a" * 64, parsed, reader(CONFIG))
    assert (record.os, record.arch, record.variant) == ("linux", "arm", "v7")
    assert record.created == pytest.approx(1706933106.123456)
    assert record.labels == {"org.opencontainers.image.vendor": "label-vendor"}, "non-strings are dropped"
    assert record.vendor == "label-vendor"
    assert record.annotations == {"org.opencontainers.image.title": "t"}
    assert record.layers == [(sha(b"one"), 3), (sha(b"two!"), 4)]
    assert record.total_size == len(parsed.raw) + len(CONFIG) + 7
    assert [h["created_by"] for h in record.history] == ["ADD x", "ENV A=1"]
    assert record.history[1]["empty_layer"] is True
    row = record.row()
    assert row["first_layer"] == sha(b"one") and row["config_size"] == len(CONFIG)
    assert json.loads(row["layers"]) == [[sha(b"one"), 3], [sha(b"two!"), 4]]


def test_an_annotation_vendor_wins_over_the_label() -> None:
    parsed = manifest(CONFIG, [], annotations={"org.opencontainers.image.vendor": "annotated"})
    assert extract("sha256:" + "b" * 64, parsed, reader(CONFIG)).vendor == "annotated"


def test_created_falls_back_to_the_newest_history_entry() -> None:
    history = [{"created": "2020-01-01T00:00:00Z"}, {"created": "2021-01-01T00:00:00Z"}]
    config = json.dumps({"history": history})
    record = extract("sha256:" + "c" * 64, manifest(config.encode(), []), reader(config.encode()))
    assert record.created == parse_time("2021-01-01T00:00:00Z")


def test_an_artifact_config_is_not_read() -> None:
    parsed = manifest(b"{}", [b"payload"], config_type="application/vnd.example+json",
                      artifactType="application/vnd.example.artifact")
    record = extract("sha256:" + "d" * 64, parsed, reader())  # reading would raise BlobUnknown
    assert record.os is None and record.config_media_type == "application/vnd.example+json"
    assert record.artifact_type == "application/vnd.example.artifact"


def test_an_unparseable_config_leaves_the_platform_empty() -> None:
    record = extract("sha256:" + "e" * 64, manifest(b"not json", []), reader(b"not json"))
    assert (record.os, record.arch, record.created) == (None, None, None)


def test_an_index_records_its_children_with_platforms() -> None:
    child = descriptor(mt.OCI_MANIFEST, b"child", platform={"os": "linux", "architecture": "arm64", "x": "y"})
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [child],
            "annotations": {"org.opencontainers.image.description": "multi"}}
    parsed = parse_stored(json.dumps(body).encode(), mt.OCI_INDEX)
    record = extract("sha256:" + "f" * 64, parsed, reader())
    assert record.children == [{"digest": sha(b"child"), "mediaType": mt.OCI_MANIFEST,
                                "platform": {"os": "linux", "architecture": "arm64"}}]
    assert record.layers == [] and record.annotations["org.opencontainers.image.description"] == "multi"


SUBJECT = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 10}


@pytest.mark.parametrize(("artifact_type", "tag", "expected"), [
    (COSIGN_ARTIFACT_TYPE, None, ("cosign", SUBJECT["digest"])),
    (NOTATION_ARTIFACT_TYPE, None, ("notation", SUBJECT["digest"])),
    ("application/vnd.example.sbom", None, None),
    (None, "sha256-" + "2" * 64 + ".sig", ("cosign", "sha256:" + "2" * 64)),
    (None, "sha256-" + "2" * 64 + ".att", None),
    (None, "latest", None),
])
def test_signatures_follow_zots_rules(artifact_type: str | None, tag: str | None,
                                      expected: tuple[str, str] | None) -> None:
    extra: dict[str, Any] = {"subject": SUBJECT} if artifact_type else {}
    if artifact_type:
        extra["artifactType"] = artifact_type
    parsed = manifest(b"{}", [b"sig"], config_type=mt.OCI_EMPTY, **extra)
    assert signature_of(parsed, tag) == expected


def test_an_index_is_never_a_signature() -> None:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [], "subject": SUBJECT,
            "artifactType": COSIGN_ARTIFACT_TYPE}
    parsed = parse_stored(json.dumps(body).encode(), mt.OCI_INDEX)
    assert signature_of(parsed, None) is None


@pytest.mark.parametrize(("tag", "expected"), [
    ("sha256-" + "a" * 64, True), ("sha256-" + "a" * 64 + ".sig", False), ("latest", False), (None, False),
])
def test_referrers_schema_tags(tag: str | None, expected: bool) -> None:
    assert is_referrers_tag(tag) is expected
