"""The referrers API: GET /v2/<name>/referrers/<digest> with artifactType filtering."""

from __future__ import annotations

import json

import pytest

from oci_api_client import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, assert_error, digest_of

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"


def _referrers(reg, repo, digest, query=""):
    resp = reg.get(f"/v2/{repo}/referrers/{digest}{query}")
    assert resp.status_code == 200, resp.get_data()
    assert resp.headers["Content-Type"] == OCI_INDEX
    doc = json.loads(resp.get_data())
    assert doc["schemaVersion"] == 2
    assert doc["mediaType"] == OCI_INDEX
    assert isinstance(doc["manifests"], list)
    return resp, doc


def _by_digest(doc):
    return {d["digest"]: d for d in doc["manifests"]}


@pytest.fixture
def graph(reg):
    """A subject with an SBOM, a signature, an artifact without artifactType, an index
    referrer, and an unrelated manifest."""
    subject = reg.push_image("repo", "base")
    sbom = reg.artifact_manifest("repo", SBOM, subject,
                                 annotations={"org.opencontainers.image.created": "2022-01-01T14:42:55Z",
                                              "org.example.sbom.format": "json"})
    sig = reg.artifact_manifest("repo", SIG, subject, annotations={"org.example.fp": "abcd"})
    plain = reg.artifact_manifest("repo", None, subject, config_media_type=OCI_CONFIG)
    child = reg.push_image("repo", by_digest=True)
    idx = reg.index_manifest([child], artifactType=SBOM, annotations={"k": "v"},
                             subject={"mediaType": OCI_MANIFEST, "digest": subject.digest,
                                      "size": len(subject.raw)})
    idx_no_type = reg.index_manifest([child],
                                     subject={"mediaType": OCI_MANIFEST, "digest": subject.digest,
                                              "size": len(subject.raw)})
    for art in (sbom, sig, plain):
        assert reg.put_manifest("repo", art.digest, art.raw).status_code == 201
    for i in (idx, idx_no_type):
        assert reg.put_manifest("repo", i.digest, i.raw, OCI_INDEX).status_code == 201
    unrelated = reg.artifact_manifest("repo", SBOM, child)
    assert reg.put_manifest("repo", unrelated.digest, unrelated.raw).status_code == 201
    return reg, subject, {"sbom": sbom, "sig": sig, "plain": plain, "idx": idx,
                          "idx_no_type": idx_no_type, "unrelated": unrelated}


def test_referrers_lists_descriptors(graph):
    reg, subject, arts = graph
    resp, doc = _referrers(reg, "repo", subject.digest)
    got = _by_digest(doc)
    expected = {arts[k].digest for k in ("sbom", "sig", "plain", "idx", "idx_no_type")}
    assert set(got) == expected
    for key in ("sbom", "sig", "plain", "idx", "idx_no_type"):
        art, desc = arts[key], got[arts[key].digest]
        assert desc["mediaType"] == art.media_type
        assert desc["size"] == len(art.raw)
    assert got[arts["sbom"].digest]["artifactType"] == SBOM
    assert got[arts["sig"].digest]["artifactType"] == SIG
    assert got[arts["plain"].digest]["artifactType"] == OCI_CONFIG  # from the config
    assert got[arts["idx"].digest]["artifactType"] == SBOM
    assert "artifactType" not in got[arts["idx_no_type"].digest] or \
        not got[arts["idx_no_type"].digest]["artifactType"]
    assert got[arts["sbom"].digest]["annotations"] == {
        "org.opencontainers.image.created": "2022-01-01T14:42:55Z", "org.example.sbom.format": "json"}
    assert got[arts["sig"].digest]["annotations"] == {"org.example.fp": "abcd"}
    assert got[arts["idx"].digest]["annotations"] == {"k": "v"}
    assert not got[arts["plain"].digest].get("annotations")
    assert "OCI-Filters-Applied" not in resp.headers


def test_referrers_filter(graph):
    reg, subject, arts = graph
    resp, doc = _referrers(reg, "repo", subject.digest, f"?artifactType={SBOM}")
    assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    assert set(_by_digest(doc)) == {arts["sbom"].digest, arts["idx"].digest}
    resp, doc = _referrers(reg, "repo", subject.digest, f"?artifactType={OCI_CONFIG}")
    assert set(_by_digest(doc)) == {arts["plain"].digest}


def test_referrers_filter_no_match(graph):
    reg, subject, _ = graph
    resp, doc = _referrers(reg, "repo", subject.digest, "?artifactType=application/none")
    assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    assert doc["manifests"] == []


def test_referrers_multiple_filters(graph):
    reg, subject, arts = graph
    resp, doc = _referrers(reg, "repo", subject.digest, f"?artifactType={SBOM}&artifactType={SIG}")
    # zot ORs several artifactType filters; a registry may also apply only one
    assert set(_by_digest(doc)) <= {arts["sbom"].digest, arts["idx"].digest, arts["sig"].digest}
    assert "artifactType" in resp.headers.get("OCI-Filters-Applied", "")


def test_referrers_none(reg):
    img = reg.push_image("repo", "v1")
    _, doc = _referrers(reg, "repo", img.digest)
    assert doc["manifests"] == []


def test_referrers_unknown_subject(reg):
    reg.push_image("repo", "v1")
    _, doc = _referrers(reg, "repo", digest_of(b"no such subject"))
    assert doc["manifests"] == []


def test_referrers_unknown_repo(reg):
    _, doc = _referrers(reg, "nosuchrepo", digest_of(b"anything"))
    assert doc["manifests"] == []


@pytest.mark.parametrize("bad", ["notadigest", "sha256:xyz", "sha256:" + "a" * 63,
                                 "md5:d41d8cd98f00b204e9800998ecf8427e", "latest",
                                 "sha256:" + "A" * 64])
def test_referrers_invalid_digest(reg, bad):
    reg.push_image("repo", "v1")
    assert_error(reg.get(f"/v2/repo/referrers/{bad}"), 400)


def test_subject_pushed_after_referrer(reg):
    subject = reg.image_manifest("repo")
    art = reg.artifact_manifest("repo", SBOM, subject)
    resp = reg.put_manifest("repo", art.digest, art.raw)
    assert resp.status_code == 201
    assert resp.headers["OCI-Subject"] == subject.digest
    _, doc = _referrers(reg, "repo", subject.digest)
    assert set(_by_digest(doc)) == {art.digest}
    assert reg.put_manifest("repo", "base", subject.raw).status_code == 201
    _, doc = _referrers(reg, "repo", subject.digest)
    assert set(_by_digest(doc)) == {art.digest}


def test_referrer_deleted(graph):
    reg, subject, arts = graph
    assert reg.delete(f"/v2/repo/manifests/{arts['sig'].digest}").status_code == 202
    _, doc = _referrers(reg, "repo", subject.digest)
    assert arts["sig"].digest not in _by_digest(doc)
    assert arts["sbom"].digest in _by_digest(doc)


def test_tagged_referrer_untag_keeps_it_listed(reg):
    subject = reg.push_image("repo", "base")
    art = reg.artifact_manifest("repo", SBOM, subject)
    assert reg.put_manifest("repo", "tagged-artifact", art.raw).status_code == 201
    assert reg.delete("/v2/repo/manifests/tagged-artifact").status_code == 202
    _, doc = _referrers(reg, "repo", subject.digest)
    assert set(_by_digest(doc)) == {art.digest}


def test_referrers_scoped_to_repository(reg):
    subject = reg.push_image("repo", "base")
    art = reg.artifact_manifest("other", SBOM, subject)
    assert reg.put_manifest("other", art.digest, art.raw).status_code == 201
    _, doc = _referrers(reg, "repo", subject.digest)
    assert doc["manifests"] == []
    _, doc = _referrers(reg, "other", subject.digest)
    assert set(_by_digest(doc)) == {art.digest}


def test_referrers_of_sha512_subject(reg):
    subject = reg.image_manifest("repo", alg="sha512")
    assert reg.put_manifest("repo", subject.digest, subject.raw).status_code == 201
    art = reg.artifact_manifest("repo", SBOM, subject)
    assert reg.put_manifest("repo", art.digest, art.raw).status_code == 201
    _, doc = _referrers(reg, "repo", subject.digest)
    assert set(_by_digest(doc)) == {art.digest}


def test_referrers_survive_restart(make_registry):
    reg = make_registry()
    subject = reg.push_image("repo", "base")
    art = reg.artifact_manifest("repo", SBOM, subject)
    assert reg.put_manifest("repo", art.digest, art.raw).status_code == 201
    again = make_registry()
    _, doc = _referrers(again, "repo", subject.digest)
    assert set(_by_digest(doc)) == {art.digest}
