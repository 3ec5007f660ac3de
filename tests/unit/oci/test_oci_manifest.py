"""Tests for zotpy.oci.manifest: parsing pushed manifests and indexes while keeping the raw bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from zotpy.errors import ManifestInvalid, UnsupportedMediaType
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Descriptor, Manifest, accepted_types, parse_manifest, parse_stored

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes"
CONFIG_DESC = {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(CONFIG)), "size": len(CONFIG)}
LAYER_DESC = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": str(Digest.of(LAYER)),
              "size": len(LAYER)}
FOREIGN_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


def image(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": CONFIG_DESC,
                            "layers": [LAYER_DESC]}
    body.update(extra)
    return body


def index(**extra: Any) -> dict[str, Any]:
    child = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"child")), "size": 5,
             "platform": {"architecture": "amd64", "os": "linux"}}
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [child]}
    body.update(extra)
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def parse(body: Any, content_type: str = mt.OCI_MANIFEST, docker_compat: bool = False) -> Manifest:
    return parse_manifest(encode(body), content_type, docker_compat)


# -- media types -----------------------------------------------------------------------


def test_oci_image_manifest() -> None:
    manifest = parse(image())
    assert manifest.media_type == mt.OCI_MANIFEST
    assert not manifest.is_index
    assert manifest.config is not None
    assert manifest.config.digest == Digest.of(CONFIG)
    assert manifest.config.size == len(CONFIG)
    assert manifest.config.media_type == mt.OCI_CONFIG
    assert [d.digest for d in manifest.layers] == [Digest.of(LAYER)]
    assert manifest.manifests == ()
    assert manifest.subject is None
    assert manifest.artifact_type is None
    assert manifest.annotations is None
    assert manifest.blobs() == (manifest.config, *manifest.layers)


def test_oci_index() -> None:
    manifest = parse(index(), mt.OCI_INDEX)
    assert manifest.is_index
    assert manifest.config is None
    assert manifest.layers == ()
    assert [d.digest for d in manifest.manifests] == [Digest.of(b"child")]
    assert manifest.manifests[0].platform == {"architecture": "amd64", "os": "linux"}
    assert manifest.blobs() == ()


def test_body_without_media_type_takes_the_content_type() -> None:
    body = image()
    del body["mediaType"]
    assert parse(body).media_type == mt.OCI_MANIFEST
    body = index()
    del body["mediaType"]
    assert parse(body, mt.OCI_INDEX).is_index


@pytest.mark.parametrize("content_type", [
    f"{mt.OCI_MANIFEST}; charset=utf-8",
    mt.OCI_MANIFEST.upper(),
    f"  {mt.OCI_MANIFEST}  ",
])
def test_content_type_parameters_and_case(content_type: str) -> None:
    assert parse(image(), content_type).media_type == mt.OCI_MANIFEST


@pytest.mark.parametrize(("content_type", "body_type"), [
    (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST),
    (mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST_LIST),
])
def test_docker_types_only_with_compat(content_type: str, body_type: str) -> None:
    if body_type == mt.DOCKER_MANIFEST_LIST:
        body = index(mediaType=body_type)
    else:
        body = image(mediaType=body_type, config={**CONFIG_DESC, "mediaType": mt.DOCKER_CONFIG})
    with pytest.raises(UnsupportedMediaType) as info:
        parse(body, content_type, docker_compat=False)
    assert info.value.http_status == 415
    assert info.value.code == "UNSUPPORTED"
    manifest = parse(body, content_type, docker_compat=True)
    assert manifest.media_type == body_type
    assert manifest.is_index is (body_type == mt.DOCKER_MANIFEST_LIST)


def test_docker_manifest_must_state_its_media_type() -> None:
    body = image()
    del body["mediaType"]
    with pytest.raises(ManifestInvalid):
        parse(body, mt.DOCKER_MANIFEST, docker_compat=True)


def test_accepted_types() -> None:
    assert accepted_types(False) == {mt.OCI_MANIFEST, mt.OCI_INDEX}
    assert accepted_types(True) == {mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST,
                                    mt.DOCKER_MANIFEST_LIST}


@pytest.mark.parametrize("content_type", [
    None, "", "application/json", "application/octet-stream", mt.OCI_CONFIG,
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
])
@pytest.mark.parametrize("docker_compat", [False, True])
def test_unsupported_content_type(content_type: str | None, docker_compat: bool) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        parse_manifest(encode(image()), content_type, docker_compat)
    assert info.value.http_status == 415


@pytest.mark.parametrize(("body", "content_type"), [
    pytest.param(image(mediaType=mt.OCI_INDEX), mt.OCI_MANIFEST, id="index-type-in-image"),
    pytest.param(index(mediaType=mt.OCI_MANIFEST), mt.OCI_INDEX, id="image-type-in-index"),
    pytest.param(image(mediaType=mt.DOCKER_MANIFEST), mt.OCI_MANIFEST, id="docker-type-in-oci"),
    pytest.param(image(mediaType=mt.OCI_MANIFEST.upper()), mt.OCI_MANIFEST, id="case-differs"),
    pytest.param(image(mediaType=""), mt.OCI_MANIFEST, id="empty"),
    pytest.param(image(mediaType=7), mt.OCI_MANIFEST, id="not-a-string"),
])
def test_body_media_type_mismatch(body: Any, content_type: str) -> None:
    with pytest.raises(ManifestInvalid):
        parse(body, content_type, docker_compat=True)


# -- structure -------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "content_type"), [
    pytest.param(image(manifests=[]), mt.OCI_MANIFEST, id="image-with-manifests"),
    pytest.param(index(layers=[]), mt.OCI_INDEX, id="index-with-layers"),
    pytest.param(image(manifests=index()["manifests"]), mt.OCI_MANIFEST, id="image-with-children"),
])
def test_both_layers_and_manifests(body: Any, content_type: str) -> None:
    with pytest.raises(ManifestInvalid):
        parse(body, content_type)


def test_index_with_config_is_invalid() -> None:
    with pytest.raises(ManifestInvalid):
        parse(index(config=CONFIG_DESC), mt.OCI_INDEX)


def test_missing_config() -> None:
    body = image()
    del body["config"]
    with pytest.raises(ManifestInvalid, match="config"):
        parse(body)


def test_null_config() -> None:
    with pytest.raises(ManifestInvalid):
        parse(image(config=None))


def test_image_without_layers_is_accepted_as_empty() -> None:
    body = image()
    del body["layers"]
    assert parse(body).layers == ()


@pytest.mark.parametrize("layers", [None, {}, "x", [None], [1]])
def test_layers_must_be_a_list_of_descriptors(layers: Any) -> None:
    with pytest.raises(ManifestInvalid):
        parse(image(layers=layers))


@pytest.mark.parametrize("manifests", [None, {}, "x", [[]]])
def test_index_manifests_must_be_a_list_of_descriptors(manifests: Any) -> None:
    body = index(manifests=manifests)
    with pytest.raises(ManifestInvalid):
        parse(body, mt.OCI_INDEX)


def test_index_without_manifests_list() -> None:
    body = index()
    del body["manifests"]
    with pytest.raises(ManifestInvalid):
        parse(body, mt.OCI_INDEX)


def test_empty_index() -> None:
    assert parse(index(manifests=[]), mt.OCI_INDEX).manifests == ()


@pytest.mark.parametrize("version", [1, 3, "2", None, True, [2]])
def test_schema_version_must_be_2(version: Any) -> None:
    with pytest.raises(ManifestInvalid, match="schemaVersion"):
        parse(image(schemaVersion=version))


def test_missing_schema_version() -> None:
    body = image()
    del body["schemaVersion"]
    with pytest.raises(ManifestInvalid, match="schemaVersion"):
        parse(body)


def test_schema_version_float_is_rejected() -> None:
    with pytest.raises(ManifestInvalid):
        parse_manifest(encode(image()).replace(b'"schemaVersion": 2', b'"schemaVersion": 2.0'),
                       mt.OCI_MANIFEST, False)


@pytest.mark.parametrize("raw", [
    pytest.param(b"", id="empty"),
    pytest.param(b"{", id="truncated"),
    pytest.param(b"not json", id="text"),
    pytest.param(b"\xff\xfe\x00garbage", id="binary"),
    pytest.param(b"{'schemaVersion': 2}", id="single-quotes"),
])
def test_invalid_json(raw: bytes) -> None:
    with pytest.raises(ManifestInvalid):
        parse_manifest(raw, mt.OCI_MANIFEST, False)


@pytest.mark.parametrize("raw", [b"[]", b"[{}]", b"2", b'"manifest"', b"null", b"true"])
def test_json_that_is_not_an_object(raw: bytes) -> None:
    with pytest.raises(ManifestInvalid, match="object"):
        parse_manifest(raw, mt.OCI_MANIFEST, False)


# -- descriptors -----------------------------------------------------------------------


@pytest.mark.parametrize("change", [
    pytest.param({"size": -1}, id="negative-size"),
    pytest.param({"size": True}, id="bool-size"),
    pytest.param({"size": False}, id="bool-false-size"),
    pytest.param({"size": 1.5}, id="float-size"),
    pytest.param({"size": "11"}, id="string-size"),
    pytest.param({"size": None}, id="null-size"),
    pytest.param({"digest": "sha256:abc"}, id="short-digest"),
    pytest.param({"digest": "md5:" + "a" * 32}, id="md5-digest"),
    pytest.param({"digest": "sha256:" + "A" * 64}, id="uppercase-digest"),
    pytest.param({"digest": 5}, id="numeric-digest"),
    pytest.param({"digest": None}, id="null-digest"),
    pytest.param({"mediaType": ""}, id="empty-media-type"),
    pytest.param({"mediaType": None}, id="null-media-type"),
    pytest.param({"mediaType": 3}, id="numeric-media-type"),
    pytest.param({"urls": "http://x"}, id="urls-string"),
    pytest.param({"urls": [1]}, id="urls-not-strings"),
    pytest.param({"annotations": {"a": 1}}, id="annotation-value-not-string"),
    pytest.param({"annotations": ["a"]}, id="annotations-list"),
    pytest.param({"artifactType": 1}, id="artifact-type-not-string"),
    pytest.param({"platform": "linux/amd64"}, id="platform-string"),
])
@pytest.mark.parametrize("where", ["config", "layer", "subject"])
def test_bad_descriptor(change: dict[str, Any], where: str) -> None:
    bad = {**LAYER_DESC, **change}
    if where == "config":
        body = image(config=bad)
    elif where == "layer":
        body = image(layers=[LAYER_DESC, bad])
    else:
        body = image(subject=bad)
    with pytest.raises(ManifestInvalid):
        parse(body)


@pytest.mark.parametrize("field", ["mediaType", "digest", "size"])
def test_descriptor_missing_field(field: str) -> None:
    bad = {k: v for k, v in LAYER_DESC.items() if k != field}
    with pytest.raises(ManifestInvalid):
        parse(image(layers=[bad]))


def test_bad_child_descriptor_in_index() -> None:
    child = {**index()["manifests"][0], "size": -5}
    with pytest.raises(ManifestInvalid, match=r"manifests\[0\]"):
        parse(index(manifests=[child]), mt.OCI_INDEX)


def test_descriptor_error_names_its_place() -> None:
    with pytest.raises(ManifestInvalid, match=r"layers\[1\]"):
        parse(image(layers=[LAYER_DESC, {**LAYER_DESC, "size": -1}]))


def test_descriptor_zero_size_and_large_size() -> None:
    manifest = parse(image(layers=[{**LAYER_DESC, "size": 0}, {**LAYER_DESC, "size": 2**40}]))
    assert [d.size for d in manifest.layers] == [0, 2**40]


def test_descriptor_with_sha512_digest() -> None:
    layer = {**LAYER_DESC, "digest": str(Digest.of(LAYER, "sha512"))}
    assert parse(image(layers=[layer])).layers[0].digest.algorithm == "sha512"


def test_descriptor_round_trip() -> None:
    value = {**LAYER_DESC, "artifactType": "application/x-thing", "annotations": {"k": "v"},
             "platform": {"os": "linux"}}
    descriptor = Descriptor.from_json(value, "x")
    assert descriptor.to_json() == value


# -- optional fields -------------------------------------------------------------------


def test_subject_artifact_type_and_annotations() -> None:
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"subject")), "size": 7}
    manifest = parse(image(subject=subject, artifactType="application/vnd.example.sig",
                           annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}))
    assert manifest.subject is not None
    assert manifest.subject.digest == Digest.of(b"subject")
    assert manifest.subject.size == 7
    assert manifest.artifact_type == "application/vnd.example.sig"
    assert manifest.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    assert manifest.referrer_artifact_type == "application/vnd.example.sig"


def test_index_subject_artifact_type_and_annotations() -> None:
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"subject")), "size": 7}
    manifest = parse(index(subject=subject, artifactType="application/x-idx", annotations={"a": "b"}),
                     mt.OCI_INDEX)
    assert manifest.subject is not None and manifest.subject.digest == Digest.of(b"subject")
    assert manifest.artifact_type == "application/x-idx"
    assert manifest.annotations == {"a": "b"}
    assert manifest.referrer_artifact_type == "application/x-idx"


def test_null_subject_is_no_subject() -> None:
    assert parse(image(subject=None)).subject is None


@pytest.mark.parametrize("value", [1, ["x"], {"x": 1}])
def test_artifact_type_must_be_a_string(value: Any) -> None:
    with pytest.raises(ManifestInvalid):
        parse(image(artifactType=value))


@pytest.mark.parametrize("value", [[], "x", {"k": None}, {"k": ["v"]}])
def test_top_level_annotations_must_map_strings(value: Any) -> None:
    with pytest.raises(ManifestInvalid):
        parse(image(annotations=value))


def test_referrer_artifact_type_falls_back_to_config_media_type() -> None:
    config = {**CONFIG_DESC, "mediaType": "application/vnd.example.sbom.config"}
    assert parse(image(config=config)).referrer_artifact_type == "application/vnd.example.sbom.config"


def test_referrer_artifact_type_of_index_without_artifact_type() -> None:
    assert parse(index(), mt.OCI_INDEX).referrer_artifact_type is None


@pytest.mark.parametrize(("media_type", "urls", "foreign"), [
    (FOREIGN_LAYER, ["https://example.com/layer"], True),
    ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", ["https://example.com/l"], True),
    (FOREIGN_LAYER, [], False),
    ("application/vnd.oci.image.layer.v1.tar", ["https://example.com/layer"], False),
    ("application/vnd.oci.image.layer.v1.tar", [], False),
])
def test_is_foreign(media_type: str, urls: list[str], foreign: bool) -> None:
    layer = {**LAYER_DESC, "mediaType": media_type}
    if urls:
        layer["urls"] = urls
    descriptor = parse(image(layers=[layer])).layers[0]
    assert descriptor.is_foreign is foreign
    assert descriptor.urls == tuple(urls)


# -- raw bytes -------------------------------------------------------------------------


def test_raw_bytes_kept_and_digested_exactly() -> None:
    compact = json.dumps(image(), separators=(",", ":")).encode()
    spaced = json.dumps(image(), indent=3).encode()
    trailing = compact + b"\n"
    manifests = [parse_manifest(raw, mt.OCI_MANIFEST, False) for raw in (compact, spaced, trailing)]
    assert [m.raw for m in manifests] == [compact, spaced, trailing]
    digests = {m.digest() for m in manifests}
    assert len(digests) == 3
    for manifest in manifests:
        assert manifest.digest() == Digest.of(manifest.raw)
        assert manifest.digest("sha512") == Digest.of(manifest.raw, "sha512")
    assert manifests[0].layers == manifests[1].layers == manifests[2].layers


def test_key_order_changes_the_digest() -> None:
    forward = encode(image())
    backward = json.dumps(dict(reversed(list(image().items())))).encode()
    assert parse_manifest(forward, mt.OCI_MANIFEST, False).digest() != \
        parse_manifest(backward, mt.OCI_MANIFEST, False).digest()


def test_parse_stored_uses_the_given_media_type() -> None:
    body = image()
    del body["mediaType"]
    assert parse_stored(encode(body), mt.OCI_MANIFEST).media_type == mt.OCI_MANIFEST
    with pytest.raises(ManifestInvalid):
        parse_stored(encode(image()), mt.OCI_INDEX)


def test_unknown_fields_are_ignored() -> None:
    manifest = parse(image(somethingElse={"x": [1, 2]}))
    assert manifest.config is not None
