"""Manifests: push, pull, validation of contents and references, deletes."""

from __future__ import annotations

import base64
import json
import os

import pytest

from oci_api_client import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_DIGEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_ND,
    OCI_MANIFEST,
    Image,
    assert_error,
    canonical,
    descriptor,
    digest_of,
    path_of,
)


def _assert_served(reg, repo, ref, img: Image):
    for method in ("GET", "HEAD"):
        resp = reg.request(method, f"/v2/{repo}/manifests/{ref}",
                           headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, "
                                              f"{DOCKER_LIST}"})
        assert resp.status_code == 200, (method, ref, resp.get_data())
        assert resp.headers["Docker-Content-Digest"] == img.digest
        assert resp.headers["Content-Type"] == img.media_type
        assert resp.headers["Content-Length"] == str(len(img.raw))
        assert resp.get_data() == (img.raw if method == "GET" else b"")


# -- push and pull ---------------------------------------------------------------------------

def test_push_by_tag(reg):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", "v1", img.raw)
    assert resp.status_code == 201
    assert resp.headers["Docker-Content-Digest"] == img.digest
    loc = path_of(resp.headers["Location"])
    assert loc.startswith("/v2/repo/manifests/")
    got = reg.get(loc)
    assert got.status_code == 200 and got.get_data() == img.raw
    _assert_served(reg, "repo", "v1", img)
    _assert_served(reg, "repo", img.digest, img)


def test_push_by_digest(reg):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", img.digest, img.raw)
    assert resp.status_code == 201
    assert resp.headers["Docker-Content-Digest"] == img.digest
    assert path_of(resp.headers["Location"]) == f"/v2/repo/manifests/{img.digest}"
    _assert_served(reg, "repo", img.digest, img)
    assert reg.tags("repo") == []


def test_push_by_digest_mismatch(reg):
    img = reg.image_manifest("repo")
    other = digest_of(img.raw + b" ")
    assert_error(reg.put_manifest("repo", other, img.raw), 400, "DIGEST_INVALID")
    assert reg.get(f"/v2/repo/manifests/{other}").status_code == 404
    assert reg.get(f"/v2/repo/manifests/{img.digest}").status_code == 404


def test_whitespace_changes_digest(reg):
    img = reg.image_manifest("repo")
    padded = img.raw + b"  "
    assert_error(reg.put_manifest("repo", img.digest, padded), 400, "DIGEST_INVALID")
    resp = reg.put_manifest("repo", digest_of(padded), padded)
    assert resp.status_code == 201
    assert reg.get(f"/v2/repo/manifests/{digest_of(padded)}").get_data() == padded


BAD_DIGEST_REFS = [
    "sha256:baddigeststring",
    "sha256:" + "a" * 63,
    "sha256:" + "A" * 64,
    "sha256:" + "g" * 64,
    "sha512:" + "a" * 64,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "sha256:",
    "foo:" + "a" * 64,
]


@pytest.mark.parametrize("ref", BAD_DIGEST_REFS)
def test_put_malformed_digest_reference(reg, ref):
    img = reg.image_manifest("repo")
    assert_error(reg.put_manifest("repo", ref, img.raw), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("ref", BAD_DIGEST_REFS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_malformed_digest_reference_read(reg, ref, method):
    reg.push_image("repo", "v1")
    resp = reg.request(method, f"/v2/repo/manifests/{ref}")
    assert resp.status_code in (400, 404), resp.status_code
    if method != "HEAD":
        assert_error(resp, (400, 404), "DIGEST_INVALID", "MANIFEST_UNKNOWN")


def test_sha512_manifest(reg):
    img = reg.image_manifest("repo", alg="sha512")
    assert img.digest.startswith("sha512:")
    resp = reg.put_manifest("repo", img.digest, img.raw)
    assert resp.status_code == 201
    assert resp.headers["Docker-Content-Digest"] == img.digest
    _assert_served(reg, "repo", img.digest, img)
    stored = reg.root / "repo" / "blobs" / "sha512" / img.digest.split(":")[1]
    assert stored.is_file() and stored.read_bytes() == img.raw
    assert reg.delete(f"/v2/repo/manifests/{img.digest}").status_code == 202
    assert_error(reg.get(f"/v2/repo/manifests/{img.digest}"), 404, "MANIFEST_UNKNOWN")


def test_sha512_manifest_mismatch(reg):
    img = reg.image_manifest("repo", alg="sha512")
    wrong = digest_of(img.raw + b"\n", "sha512")
    assert_error(reg.put_manifest("repo", wrong, img.raw), 400, "DIGEST_INVALID")


def test_sha512_manifest_with_tag_param(reg):
    img = reg.image_manifest("repo", alg="sha512")
    resp = reg.put_manifest("repo", img.digest, img.raw, query="?tag=t512")
    assert resp.status_code == 201
    assert resp.headers["Docker-Content-Digest"] == img.digest
    by_tag = reg.get("/v2/repo/manifests/t512")
    assert by_tag.status_code == 200 and by_tag.get_data() == img.raw
    assert by_tag.headers["Docker-Content-Digest"] == img.digest


def test_tag_params_on_digest_push(reg):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", img.digest, img.raw, query="?tag=a&tag=b&tag=c1.0")
    assert resp.status_code == 201
    oci_tags = resp.headers.getlist("OCI-Tag")
    if oci_tags:
        tags = {t.strip() for h in oci_tags for t in h.split(",")}
        assert tags == {"a", "b", "c1.0"}
    assert set(reg.tags("repo")) == {"a", "b", "c1.0"}
    for tag in ("a", "b", "c1.0"):
        _assert_served(reg, "repo", tag, img)


def test_tag_params_invalid_tag(reg):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", img.digest, img.raw, query="?tag=ok&tag=bad!tag")
    assert resp.status_code == 400
    listing = reg.get("/v2/repo/tags/list")
    if listing.status_code == 200:
        assert "bad!tag" not in (listing.get_json().get("tags") or [])


def test_tag_params_duplicates(reg):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", img.digest, img.raw, query="?tag=a&tag=a")
    assert resp.status_code in (201, 400)
    if resp.status_code == 201:
        assert reg.tags("repo") == ["a"]


def test_many_tag_params(reg):
    img = reg.image_manifest("repo")
    query = "?" + "&".join(f"tag=t{i}" for i in range(100))
    resp = reg.put_manifest("repo", img.digest, img.raw, query=query)
    assert resp.status_code in (201, 400, 413, 414)
    if resp.status_code == 201:
        assert len(reg.tags("repo")) == 100


def test_tag_repointed(reg):
    one = reg.push_image("repo", "latest")
    two = reg.push_image("repo", "latest")
    assert one.digest != two.digest
    _assert_served(reg, "repo", "latest", two)
    _assert_served(reg, "repo", one.digest, one)
    assert reg.tags("repo") == ["latest"]


def test_tag_repointed_to_index(reg):
    one = reg.push_image("repo", "latest")
    idx = reg.index_manifest([one])
    assert reg.put_manifest("repo", "latest", idx.raw, OCI_INDEX).status_code == 201
    _assert_served(reg, "repo", "latest", idx)
    assert reg.tags("repo") == ["latest"]


def test_identical_repush_is_idempotent(reg):
    img = reg.image_manifest("repo")
    for _ in range(3):
        resp = reg.put_manifest("repo", "v1", img.raw)
        assert resp.status_code == 201
        assert resp.headers["Docker-Content-Digest"] == img.digest
    index = json.loads((reg.root / "repo" / "index.json").read_bytes())
    entries = [m for m in index["manifests"] if m["digest"] == img.digest]
    assert len(entries) == 1
    assert reg.tags("repo") == ["v1"]


def test_same_manifest_several_tags(reg):
    img = reg.image_manifest("repo")
    for tag in ("a", "b", "c"):
        assert reg.put_manifest("repo", tag, img.raw).status_code == 201
    assert reg.tags("repo") == ["a", "b", "c"]
    assert reg.delete("/v2/repo/manifests/b").status_code == 202
    assert reg.tags("repo") == ["a", "c"]
    _assert_served(reg, "repo", "a", img)


def test_content_type_parameters_are_ignored(reg):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", "v1", img.raw, OCI_MANIFEST + "; charset=utf-8")
    assert resp.status_code == 201
    got = reg.get("/v2/repo/manifests/v1")
    assert got.get_data() == img.raw


def test_manifest_with_unknown_fields_and_data(reg):
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = os.urandom(64)
    reg.push_blob("repo", config)
    reg.push_blob("repo", layer)
    doc = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config, data=base64.b64encode(config).decode()),
        "layers": [descriptor(OCI_LAYER, layer)],
        "annotations": {"org.example": "x"},
        "x-custom-field": {"nested": [1, 2, 3]},
    }
    raw = json.dumps(doc).encode()
    assert reg.put_manifest("repo", "custom", raw).status_code == 201
    assert reg.get("/v2/repo/manifests/custom").get_data() == raw


def test_manifest_without_layers(reg):
    img = reg.image_manifest("repo", layers=0)
    assert img.doc["layers"] == []
    assert reg.put_manifest("repo", "nolayers", img.raw).status_code == 201


def test_large_manifest_under_limit(reg):
    annotations = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}
    img = reg.image_manifest("repo", annotations=annotations)
    assert len(img.raw) < 4 * 1024 * 1024
    assert reg.put_manifest("repo", "large", img.raw).status_code == 201
    assert reg.get("/v2/repo/manifests/large").get_data() == img.raw


def test_manifest_over_4mib(reg):
    img = reg.image_manifest("repo", annotations={"big": "A" * (4 * 1024 * 1024)})
    resp = reg.put_manifest("repo", "huge", img.raw)
    assert resp.status_code == 413
    assert reg.get("/v2/repo/manifests/huge").status_code == 404


def test_manifest_over_4mib_by_digest(reg):
    img = reg.image_manifest("repo", annotations={"big": "A" * (4 * 1024 * 1024 + 1)})
    assert reg.put_manifest("repo", img.digest, img.raw).status_code == 413


# -- references to blobs ---------------------------------------------------------------------

def test_missing_layer(reg):
    img = reg.image_manifest("repo")
    layer = img.doc["layers"][1]["digest"]
    assert reg.delete(f"/v2/repo/blobs/{layer}").status_code == 202
    resp = reg.put_manifest("repo", "v1", img.raw)
    assert 400 <= resp.status_code < 500
    assert_error(resp, (400, 404), "MANIFEST_BLOB_UNKNOWN")
    assert reg.get("/v2/repo/manifests/v1").status_code == 404


def test_missing_config(reg):
    img = reg.image_manifest("repo", push_blobs=False)
    for b in img.blobs[1:]:
        reg.push_blob("repo", b)
    resp = reg.put_manifest("repo", "v1", img.raw)
    assert_error(resp, (400, 404), "MANIFEST_BLOB_UNKNOWN")


def test_blob_only_in_other_repo(reg):
    """References are checked in the repository the manifest is pushed to."""
    img = reg.image_manifest("other")
    resp = reg.put_manifest("repo", "v1", img.raw)
    assert_error(resp, (400, 404), "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("which", ["config", "layer"])
def test_wrong_size_in_descriptor(reg, which):
    img = reg.image_manifest("repo")
    doc = img.doc
    target = doc["config"] if which == "config" else doc["layers"][0]
    target["size"] += 1
    raw = json.dumps(doc).encode()
    resp = reg.put_manifest("repo", "v1", raw)
    assert_error(resp, 400, "MANIFEST_INVALID")
    assert reg.get("/v2/repo/manifests/v1").status_code == 404


def test_subject_absent_is_accepted(reg):
    missing = {"mediaType": OCI_MANIFEST, "digest": digest_of(b"missing content"), "size": 123}
    img = reg.artifact_manifest("repo")
    doc = img.doc
    doc["subject"] = missing
    raw = canonical(doc)
    resp = reg.put_manifest("repo", "tagged-artifact", raw)
    assert resp.status_code == 201
    assert resp.headers["OCI-Subject"] == missing["digest"]


def test_subject_present_header(reg):
    subject = reg.push_image("repo", "base")
    art = reg.artifact_manifest("repo", subject=subject)
    resp = reg.put_manifest("repo", art.digest, art.raw)
    assert resp.status_code == 201
    assert resp.headers["OCI-Subject"] == subject.digest


def test_no_subject_no_header(reg):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", "v1", img.raw)
    assert "OCI-Subject" not in resp.headers


def test_nondistributable_layers_with_urls(reg):
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    normal = os.urandom(100)
    reg.push_blob("repo", config)
    reg.push_blob("repo", normal)
    nd1, nd2 = os.urandom(256), os.urandom(256)
    doc = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [
            {"mediaType": OCI_LAYER_ND, "digest": digest_of(nd1), "size": 123456,
             "urls": [f"https://store.example.com/blobs/sha256/{digest_of(nd1)[7:]}"]},
            {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar",
             "digest": digest_of(nd2), "size": 12345,
             "urls": [f"https://store.example.com/blobs/sha256/{digest_of(nd2)[7:]}"]},
            descriptor(OCI_LAYER, normal),
        ],
    }
    raw = json.dumps(doc, indent=2).encode()
    resp = reg.put_manifest("repo", "non-distributable-image", raw)
    assert resp.status_code == 201, resp.get_data()
    assert reg.get("/v2/repo/manifests/non-distributable-image").get_data() == raw


# -- artifacts ---------------------------------------------------------------------------------

def test_artifact_with_empty_config(reg):
    art = reg.artifact_manifest("repo", artifact_type="application/vnd.example.conf1")
    assert art.doc["config"] == {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2}
    resp = reg.put_manifest("repo", "artifact", art.raw)
    assert resp.status_code == 201
    _assert_served(reg, "repo", "artifact", art)
    blob = reg.get(f"/v2/repo/blobs/{EMPTY_DIGEST}")
    assert blob.get_data() == b"{}"


def test_artifact_without_layers(reg):
    reg.push_blob("repo", b"{}")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "artifactType": "application/vnd.example.conf1",
           "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
           "layers": [{"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2}]}
    raw = canonical(doc)
    assert reg.put_manifest("repo", "artifact-without-layers", raw).status_code == 201


def test_artifact_custom_config_media_type(reg):
    art = reg.artifact_manifest("repo", artifact_type=None,
                                config_media_type="application/vnd.cncf.helm.config.v1+json")
    assert reg.put_manifest("repo", "helm", art.raw).status_code == 201


# -- indexes -------------------------------------------------------------------------------------

def test_index(reg):
    a = reg.push_image("repo", by_digest=True)
    b = reg.push_image("repo", by_digest=True)
    idx = reg.index_manifest([a, b])
    resp = reg.put_manifest("repo", "index", idx.raw, OCI_INDEX)
    assert resp.status_code == 201
    assert resp.headers["Docker-Content-Digest"] == idx.digest
    _assert_served(reg, "repo", "index", idx)
    _assert_served(reg, "repo", idx.digest, idx)


def test_empty_index(reg):
    idx = reg.index_manifest([])
    assert reg.put_manifest("repo", "empty", idx.raw, OCI_INDEX).status_code == 201
    _assert_served(reg, "repo", "empty", idx)


def test_nested_index(reg):
    inner1 = reg.index_manifest([reg.push_image("repo", by_digest=True)])
    inner2 = reg.index_manifest([reg.push_image("repo", by_digest=True)])
    for inner in (inner1, inner2):
        assert reg.put_manifest("repo", inner.digest, inner.raw, OCI_INDEX).status_code == 201
    outer = reg.index_manifest([inner1, inner2])
    assert reg.put_manifest("repo", "index-of-index", outer.raw, OCI_INDEX).status_code == 201
    _assert_served(reg, "repo", "index-of-index", outer)


def test_index_missing_child(reg):
    a = reg.push_image("repo", by_digest=True)
    ghost = Image(b'{"schemaVersion":2,"mediaType":"%s","config":{},"layers":[]}'
                  % OCI_MANIFEST.encode(), OCI_MANIFEST)
    idx = reg.index_manifest([a, ghost])
    resp = reg.put_manifest("repo", "sparse-index", idx.raw, OCI_INDEX)
    assert_error(resp, (400, 404), "MANIFEST_BLOB_UNKNOWN")
    assert reg.get("/v2/repo/manifests/sparse-index").status_code == 404


def test_index_child_only_in_other_repo(reg):
    a = reg.push_image("other", by_digest=True)
    idx = reg.index_manifest([a])
    assert_error(reg.put_manifest("repo", "x", idx.raw, OCI_INDEX), (400, 404),
                 "MANIFEST_BLOB_UNKNOWN")


def test_index_with_subject_and_artifact_type(reg):
    subject = reg.push_image("repo", "base")
    child = reg.push_image("repo", by_digest=True)
    idx = reg.index_manifest([child], artifactType="application/vnd.example.conf1",
                             subject={"mediaType": OCI_MANIFEST, "digest": subject.digest,
                                      "size": len(subject.raw)})
    resp = reg.put_manifest("repo", "tagged-artifact", idx.raw, OCI_INDEX)
    assert resp.status_code == 201
    assert resp.headers["OCI-Subject"] == subject.digest


# -- media types -----------------------------------------------------------------------------------

@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "application/octet-stream",
                                   "application/vnd.oci.image.config.v1+json",
                                   "application/vnd.docker.distribution.manifest.v1+json",
                                   "application/vnd.docker.distribution.manifest.v1+prettyjws",
                                   "foo/bar", "garbage"])
def test_unsupported_content_type(reg, ctype):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", "v1", img.raw, ctype)
    assert resp.status_code in (400, 415), resp.status_code
    assert reg.get("/v2/repo/manifests/v1").status_code == 404


def test_unknown_content_type_is_415(reg):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", "v1", img.raw, "application/vnd.example.unknown+json")
    assert resp.status_code == 415


def test_missing_content_type(reg):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", "v1", img.raw, None)
    assert resp.status_code in (201, 400, 415)


def test_media_type_contradicts_content_type(reg):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", "v1", img.raw, OCI_INDEX)
    assert_error(resp, 400, "MANIFEST_INVALID")


def test_index_media_type_contradicts_content_type(reg):
    idx = reg.index_manifest([reg.push_image("repo", by_digest=True)])
    resp = reg.put_manifest("repo", "v1", idx.raw, OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_INVALID")


def test_layers_and_manifests(reg):
    img = reg.image_manifest("repo")
    doc = img.doc
    doc["manifests"] = []
    raw = json.dumps(doc).encode()
    assert_error(reg.put_manifest("repo", "v1", raw), 400, "MANIFEST_INVALID")
    child = reg.push_image("repo", by_digest=True)
    idx = json.loads(reg.index_manifest([child]).raw)
    idx["layers"] = []
    assert_error(reg.put_manifest("repo", "v2", json.dumps(idx).encode(), OCI_INDEX), 400,
                 "MANIFEST_INVALID")


INVALID_BODIES = [
    b"",
    b"not json",
    b"{",
    b"[]",
    b"[1, 2, 3]",
    b"null",
    b"42",
    b'"a string"',
    b"{}",
    b'{"schemaVersion": 2}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
    b'{"schemaVersion": 1, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
    b' "config": {}, "layers": []}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
    b' "config": "nope", "layers": []}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
    b' "config": {"mediaType": "x", "digest": "sha256:zz", "size": 2}, "layers": []}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
    b' "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "' +
    EMPTY_DIGEST.encode() + b'", "size": "2"}, "layers": []}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
    b' "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "' +
    EMPTY_DIGEST.encode() + b'", "size": -2}, "layers": []}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
    b' "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "' +
    EMPTY_DIGEST.encode() + b'", "size": 2}, "layers": {}}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
    b' "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "' +
    EMPTY_DIGEST.encode() + b'", "size": 2}, "layers": [42]}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
    b' "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "' +
    EMPTY_DIGEST.encode() + b'", "size": 2}, "layers": [], "subject": "nope"}',
    b"\xff\xfe\x00garbage",
    b"[" * 100000 + b"]" * 100000,
    b'{"a":' * 50000 + b"1" + b"}" * 50000,
]


@pytest.mark.parametrize("body", INVALID_BODIES, ids=range(len(INVALID_BODIES)))
def test_invalid_manifest_bodies(reg, body):
    reg.push_blob("repo", b"{}")
    resp = reg.put_manifest("repo", "v1", body)
    codes = ("MANIFEST_INVALID", "DIGEST_INVALID") if b"sha256:zz" in body else ("MANIFEST_INVALID",)
    assert_error(resp, 400, *codes)
    assert reg.get("/v2/repo/manifests/v1").status_code == 404


@pytest.mark.parametrize("body", INVALID_BODIES[:12], ids=range(12))
def test_invalid_index_bodies(reg, body):
    resp = reg.put_manifest("repo", "v1", body, OCI_INDEX)
    assert_error(resp, 400, "MANIFEST_INVALID")


def test_index_child_not_a_descriptor(reg):
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [1, "x"]}).encode()
    assert_error(reg.put_manifest("repo", "v1", raw, OCI_INDEX), 400, "MANIFEST_INVALID")


# -- Docker schema 2 --------------------------------------------------------------------------------

def _docker_manifest(reg, repo):
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "n": reg.unique().decode()}).encode()
    layer = os.urandom(200)
    reg.push_blob(repo, config)
    reg.push_blob(repo, layer)
    doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
           "config": descriptor(DOCKER_CONFIG, config),
           "layers": [descriptor(DOCKER_LAYER, layer)]}
    return Image(json.dumps(doc, indent=3).encode(), DOCKER_MANIFEST)


def test_docker_manifest_with_compat(reg):
    img = _docker_manifest(reg, "repo")
    resp = reg.put_manifest("repo", "docker", img.raw, DOCKER_MANIFEST)
    assert resp.status_code == 201
    assert resp.headers["Docker-Content-Digest"] == img.digest
    _assert_served(reg, "repo", "docker", img)


def test_docker_manifest_list_with_compat(reg):
    children = []
    for _ in range(2):
        img = _docker_manifest(reg, "repo")
        assert reg.put_manifest("repo", img.digest, img.raw, DOCKER_MANIFEST).status_code == 201
        children.append(img)
    doc = {"schemaVersion": 2, "mediaType": DOCKER_LIST,
           "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": c.digest, "size": len(c.raw),
                          "platform": {"architecture": a, "os": "linux"}}
                         for c, a in zip(children, ("amd64", "arm64"), strict=True)]}
    lst = Image(json.dumps(doc).encode(), DOCKER_LIST)
    resp = reg.put_manifest("repo", "list", lst.raw, DOCKER_LIST)
    assert resp.status_code == 201
    _assert_served(reg, "repo", "list", lst)


def test_docker_manifest_list_missing_child(reg):
    img = _docker_manifest(reg, "repo")  # blobs pushed, manifest not
    doc = {"schemaVersion": 2, "mediaType": DOCKER_LIST,
           "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": img.digest, "size": len(img.raw),
                          "platform": {"architecture": "amd64", "os": "linux"}}]}
    resp = reg.put_manifest("repo", "list", json.dumps(doc).encode(), DOCKER_LIST)
    assert_error(resp, (400, 404), "MANIFEST_BLOB_UNKNOWN")


def test_docker_manifest_missing_layer(reg):
    img = _docker_manifest(reg, "repo")
    layer = img.doc["layers"][0]["digest"]
    assert reg.delete(f"/v2/repo/blobs/{layer}").status_code == 202
    assert_error(reg.put_manifest("repo", "d", img.raw, DOCKER_MANIFEST), (400, 404),
                 "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("kind", ["manifest", "list"])
def test_docker_types_refused_without_compat(make_registry, kind):
    reg = make_registry(compat=())
    img = _docker_manifest(reg, "repo")
    if kind == "manifest":
        raw, ctype = img.raw, DOCKER_MANIFEST
    else:
        raw = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []}).encode()
        ctype = DOCKER_LIST
    resp = reg.put_manifest("repo", "docker", raw, ctype)
    assert resp.status_code == 415
    assert reg.get("/v2/repo/manifests/docker").status_code == 404


def test_oci_still_accepted_without_compat(make_registry):
    reg = make_registry(compat=())
    img = reg.push_image("repo", "v1")
    _assert_served(reg, "repo", "v1", img)


# -- deletes ---------------------------------------------------------------------------------------

def test_delete_by_tag_untags(reg):
    img = reg.push_image("repo", "v1")
    reg.put_manifest("repo", "v2", img.raw)
    resp = reg.delete("/v2/repo/manifests/v1")
    assert resp.status_code == 202
    assert_error(reg.get("/v2/repo/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    assert reg.head("/v2/repo/manifests/v1").status_code == 404
    _assert_served(reg, "repo", img.digest, img)
    _assert_served(reg, "repo", "v2", img)
    assert reg.tags("repo") == ["v2"]


def test_delete_last_tag_keeps_manifest(reg):
    img = reg.push_image("repo", "v1")
    assert reg.delete("/v2/repo/manifests/v1").status_code == 202
    _assert_served(reg, "repo", img.digest, img)
    assert reg.tags("repo") == []


def test_delete_by_digest(reg):
    img = reg.push_image("repo", "v1")
    reg.put_manifest("repo", "v2", img.raw)
    keep = reg.push_image("repo", "other")
    resp = reg.delete(f"/v2/repo/manifests/{img.digest}")
    assert resp.status_code == 202
    assert_error(reg.get(f"/v2/repo/manifests/{img.digest}"), 404, "MANIFEST_UNKNOWN")
    assert reg.head(f"/v2/repo/manifests/{img.digest}").status_code == 404
    for tag in ("v1", "v2"):
        assert_error(reg.get(f"/v2/repo/manifests/{tag}"), 404, "MANIFEST_UNKNOWN")
    assert reg.tags("repo") == ["other"]
    _assert_served(reg, "repo", "other", keep)
    assert_error(reg.delete(f"/v2/repo/manifests/{img.digest}"), 404, "MANIFEST_UNKNOWN")


def test_delete_then_repush(reg):
    img = reg.push_image("repo", "v1")
    assert reg.delete(f"/v2/repo/manifests/{img.digest}").status_code == 202
    assert reg.put_manifest("repo", "v1", img.raw).status_code == 201
    _assert_served(reg, "repo", "v1", img)


def test_delete_unknown_tag(reg):
    reg.push_image("repo", "v1")
    assert_error(reg.delete("/v2/repo/manifests/nosuchtag"), 404, "MANIFEST_UNKNOWN")


def test_delete_unknown_digest(reg):
    reg.push_image("repo", "v1")
    assert_error(reg.delete(f"/v2/repo/manifests/{digest_of(b'nothing')}"), 404,
                 "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("ref", ["v1", digest_of(b"nothing")])
def test_delete_in_unknown_repo(reg, ref):
    resp = reg.delete(f"/v2/nosuch/manifests/{ref}")
    assert_error(resp, 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")


def test_delete_index_then_children(reg):
    a = reg.push_image("repo", by_digest=True)
    idx = reg.index_manifest([a])
    assert reg.put_manifest("repo", "idx", idx.raw, OCI_INDEX).status_code == 201
    assert reg.delete(f"/v2/repo/manifests/{idx.digest}").status_code == 202
    assert reg.delete(f"/v2/repo/manifests/{a.digest}").status_code == 202
    for dig in {d["digest"] for d in [a.doc["config"], *a.doc["layers"]]}:
        assert reg.delete(f"/v2/repo/blobs/{dig}").status_code == 202


# -- lookups -----------------------------------------------------------------------------------------

def test_unknown_repo(reg):
    assert_error(reg.get("/v2/nosuch/manifests/latest"), 404, "NAME_UNKNOWN")
    assert reg.head("/v2/nosuch/manifests/latest").status_code == 404
    assert_error(reg.get(f"/v2/nosuch/manifests/{digest_of(b'x')}"), 404, "NAME_UNKNOWN")


def test_unknown_tag_and_digest(reg):
    reg.push_image("repo", "v1")
    assert_error(reg.get("/v2/repo/manifests/nosuch"), 404, "MANIFEST_UNKNOWN")
    assert_error(reg.get(f"/v2/repo/manifests/{digest_of(b'x')}"), 404, "MANIFEST_UNKNOWN")
    assert reg.head("/v2/repo/manifests/nosuch").status_code == 404


def test_blob_digest_is_not_a_manifest(reg):
    img = reg.push_image("repo", "v1")
    layer = img.doc["layers"][0]["digest"]
    assert_error(reg.get(f"/v2/repo/manifests/{layer}"), 404, "MANIFEST_UNKNOWN")


INVALID_NAMES = [
    "UPPER",
    "Upper/case",
    "a..b",
    "a//b",
    "-abc",
    "abc-",
    ".abc",
    "abc.",
    "a_",
    "a/-b",
    "a" * 256,
    "/".join(["abcdefghi"] * 30),
    "a b",
    "a%00b",
    "ä",
    "a/./b",
    "a/../b",
    "..",
    "../etc",
    "a:b",
    "a@b",
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_on_manifest_routes(reg, name):
    img = reg.image_manifest("good")
    for method, data in (("GET", None), ("HEAD", None), ("PUT", img.raw), ("DELETE", None)):
        resp = reg.request(method, f"/v2/{name}/manifests/v1", data=data,
                           headers={"Content-Type": OCI_MANIFEST})
        assert resp.status_code in (400, 404), (name, method, resp.status_code)
        if method != "HEAD":
            assert_error(resp, (400, 404), "NAME_INVALID", "NAME_UNKNOWN")


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_on_blob_routes(reg, name):
    dig = digest_of(b"abc")
    for method, path, data in (
        ("GET", f"/v2/{name}/blobs/{dig}", None),
        ("HEAD", f"/v2/{name}/blobs/{dig}", None),
        ("DELETE", f"/v2/{name}/blobs/{dig}", None),
        ("POST", f"/v2/{name}/blobs/uploads/", None),
        ("POST", f"/v2/{name}/blobs/uploads/?digest={dig}", b"abc"),
        ("GET", f"/v2/{name}/tags/list", None),
        ("GET", f"/v2/{name}/referrers/{dig}", None),
    ):
        resp = reg.request(method, path, data=data,
                           headers={"Content-Type": "application/octet-stream"})
        assert resp.status_code in (400, 404), (name, method, path, resp.status_code)
        if method != "HEAD":
            assert_error(resp, (400, 404), "NAME_INVALID", "NAME_UNKNOWN")
    assert name not in reg.catalog()


def test_name_length_limit(reg):
    ok = "/".join(["a" * 50] * 5)  # 254 characters: allowed
    assert len(ok) < 256
    reg.push_image(ok, "v1")
    too_long = ok + "b"
    assert len(too_long) >= 255
    img = reg.image_manifest(ok)
    resp = reg.put_manifest(too_long + "cc", "v1", img.raw)
    assert_error(resp, (400, 404), "NAME_INVALID")


INVALID_TAGS = [
    "bad!tag",
    ".lead",
    "-lead",
    "a" * 129,
    "tag with space",
    "tag%00nul",
    "tag*",
    "ta/g",
]


@pytest.mark.parametrize("tag", INVALID_TAGS)
def test_invalid_tags(reg, tag):
    img = reg.image_manifest("repo")
    resp = reg.put_manifest("repo", tag, img.raw)
    assert 400 <= resp.status_code < 500, resp.status_code
    if "/" not in tag:
        assert resp.status_code == 400
    listing = reg.get("/v2/repo/tags/list")
    assert listing.status_code in (200, 404)
    if listing.status_code == 200:
        assert tag not in (listing.get_json().get("tags") or [])


@pytest.mark.parametrize("tag", ["a" * 128, "_underscore", "A.B-c_d", "0", "UPPER", "v1.2.3-rc.1"])
def test_valid_tags(reg, tag):
    img = reg.image_manifest("repo")
    assert reg.put_manifest("repo", tag, img.raw).status_code == 201
    _assert_served(reg, "repo", tag, img)
    assert tag in reg.tags("repo")
