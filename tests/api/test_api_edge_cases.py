"""Edge cases where repository names meet the on-disk layout, nested repositories,
sub-path routes, and odd-but-valid requests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from oci_api_client import OCI_INDEX, OCI_MANIFEST, assert_error, digest_of, path_of, with_query
from zotpy.config.model import StorageConfig

OCTET = {"Content-Type": "application/octet-stream"}


def _intact(reg, repo, tag, img):
    got = reg.get(f"/v2/{repo}/manifests/{tag}")
    assert got.status_code == 200 and got.get_data() == img.raw
    for blob in img.blobs:
        assert reg.get(f"/v2/{repo}/blobs/{digest_of(blob)}").get_data() == blob
    assert tag in reg.tags(repo)


@pytest.mark.parametrize("inner", ["blobs", "index.json", "oci-layout", "blobs/sha256",
                                   "blobs/sha512", "blobs/sha256/" + "a" * 64])
@pytest.mark.parametrize("order", ["outer_first", "inner_first"])
def test_names_colliding_with_layout_files(reg, inner, order):
    """`x/blobs` or `x/index.json` are valid repository names; using them must never
    corrupt repository `x` (refusing them with a 4xx is fine)."""
    inner_name = f"x/{inner}"
    if order == "outer_first":
        outer = reg.push_image("x", "v1")
    resp = reg.post(f"/v2/{inner_name}/blobs/uploads/?digest={digest_of(b'inner')}", data=b"inner",
                    headers=OCTET)
    assert resp.status_code in (201, 400, 404, 409), resp.status_code
    inner_ok = resp.status_code == 201
    if inner_ok:
        inner_img = reg.image_manifest(inner_name)
        r = reg.put_manifest(inner_name, "v1", inner_img.raw)
        assert r.status_code in (201, 400, 404, 409)
        inner_ok = r.status_code == 201
    if order == "inner_first":
        img = reg.image_manifest("x")
        r = reg.put_manifest("x", "v1", img.raw)
        assert r.status_code in (201, 400, 409)
        if r.status_code != 201:
            return
        outer = img
    _intact(reg, "x", "v1", outer)
    if inner_ok:
        _intact(reg, inner_name, "v1", inner_img)
    resp = reg.get("/v2/_catalog")
    assert resp.status_code == 200
    assert "x" in resp.get_json()["repositories"]


def test_nested_repositories_are_independent(reg):
    inner = reg.push_image("a/b", "inner")
    outer = reg.push_image("a", "outer")
    deeper = reg.push_image("a/b/c", "deeper")
    assert reg.tags("a") == ["outer"]
    assert reg.tags("a/b") == ["inner"]
    assert reg.tags("a/b/c") == ["deeper"]
    assert {"a", "a/b", "a/b/c"} <= set(reg.catalog())
    # deleting everything in "a" leaves "a/b" and "a/b/c" alone
    assert reg.delete(f"/v2/a/manifests/{outer.digest}").status_code == 202
    for blob in outer.blobs:
        assert reg.delete(f"/v2/a/blobs/{digest_of(blob)}").status_code == 202
    _intact(reg, "a/b", "inner", inner)
    _intact(reg, "a/b/c", "deeper", deeper)
    # a blob of "a/b" is not a blob of "a"
    assert reg.get(f"/v2/a/blobs/{digest_of(inner.blobs[0])}").status_code == 404


def test_parent_directory_is_not_a_repository(reg):
    reg.push_image("p/q/r", "v1")
    assert_error(reg.get("/v2/p/tags/list"), 404, "NAME_UNKNOWN")
    assert_error(reg.get("/v2/p/q/manifests/v1"), 404, "NAME_UNKNOWN")
    assert "p" not in reg.catalog() and "p/q" not in reg.catalog()


def test_sub_path_route_name_itself(make_registry, tmp_path):
    sub_root = tmp_path / "sub"
    reg = make_registry(sub_paths={"sp": StorageConfig(root_directory=str(sub_root))})
    img = reg.push_image("sp", "v1")
    _intact(reg, "sp", "v1", img)
    assert "sp" in reg.catalog()
    assert not (reg.root / "sp").exists()


def test_sub_path_store_dedupe_off(make_registry, tmp_path):
    reg = make_registry(sub_paths={"sp": StorageConfig(root_directory=str(tmp_path / "sub"),
                                                       dedupe=False)})
    data = os.urandom(500)
    reg.push_blob("sp/a", data)
    reg.push_blob("sp/b", data)
    assert reg.delete(f"/v2/sp/a/blobs/{digest_of(data)}").status_code == 202
    assert reg.get(f"/v2/sp/b/blobs/{digest_of(data)}").get_data() == data


def test_referrers_filter_with_plus_in_artifact_type(reg):
    subject = reg.push_image("repo", "base")
    kind = "application/vnd.example.sbom+json"
    art = reg.artifact_manifest("repo", kind, subject)
    assert reg.put_manifest("repo", art.digest, art.raw).status_code == 201
    resp = reg.get(f"/v2/repo/referrers/{subject.digest}?artifactType=application%2Fvnd.example.sbom%2Bjson")
    assert resp.status_code == 200
    assert [d["digest"] for d in resp.get_json()["manifests"]] == [art.digest]


def test_index_child_wrong_size(reg):
    child = reg.push_image("repo", by_digest=True)
    doc = json.loads(reg.index_manifest([child]).raw)
    doc["manifests"][0]["size"] += 5
    resp = reg.put_manifest("repo", "idx", json.dumps(doc).encode(), OCI_INDEX)
    assert_error(resp, 400, "MANIFEST_INVALID")


def test_subject_wrong_size_is_still_accepted(reg):
    subject = reg.push_image("repo", "base")
    art = reg.artifact_manifest("repo", "application/x", subject)
    doc = art.doc
    doc["subject"]["size"] += 1
    raw = json.dumps(doc).encode()
    resp = reg.put_manifest("repo", digest_of(raw), raw)
    assert resp.status_code in (201, 400)


def test_empty_patch(reg):
    loc = reg.start_upload("repo")
    r = reg.patch(loc, data=b"", headers=OCTET)
    assert r.status_code in (202, 400, 416)
    loc = path_of(r.headers["Location"]) if r.status_code == 202 else loc
    data = b"payload"
    r = reg.patch_chunk(loc, data, 0)
    assert r.status_code == 202
    assert reg.put(with_query(path_of(r.headers["Location"]), digest=digest_of(data)), data=b"",
                   headers=OCTET).status_code == 201


def test_patch_after_put_of_other_session(reg):
    """Two sessions in one repository for the same digest do not interfere."""
    data = os.urandom(80)
    dig = digest_of(data)
    one, two = reg.start_upload("repo"), reg.start_upload("repo")
    r1 = reg.patch_chunk(one, data[:40], 0)
    r2 = reg.patch_chunk(two, data[:40], 0)
    assert reg.put(with_query(path_of(r1.headers["Location"]), digest=dig), data=data[40:],
                   headers={**OCTET, "Content-Range": "40-79"}).status_code == 201
    status = reg.get(path_of(r2.headers["Location"]))
    assert status.status_code == 204 and status.headers["Range"] == "0-39"
    assert reg.put(with_query(path_of(r2.headers["Location"]), digest=dig), data=data[40:],
                   headers={**OCTET, "Content-Range": "40-79"}).status_code == 201
    assert reg.get(f"/v2/repo/blobs/{dig}").get_data() == data


@pytest.mark.parametrize("tag", ["sha256", "sha256-" + "a" * 64, "v1", "latest"])
def test_digest_like_tags(reg, tag):
    img = reg.image_manifest("repo")
    assert reg.put_manifest("repo", tag, img.raw).status_code == 201
    assert reg.get(f"/v2/repo/manifests/{tag}").get_data() == img.raw


def test_referrers_tag_schema_index_is_a_normal_tag(reg):
    """The fallback referrers tag (sha256-<hex>) is just a tag holding an index."""
    subject = reg.push_image("repo", "base")
    art = reg.artifact_manifest("repo", "application/x", subject)
    assert reg.put_manifest("repo", art.digest, art.raw).status_code == 201
    idx = reg.index_manifest([art])
    tag = subject.digest.replace(":", "-")
    assert reg.put_manifest("repo", tag, idx.raw, OCI_INDEX).status_code == 201
    assert reg.get(f"/v2/repo/manifests/{tag}").get_data() == idx.raw


def test_repo_path_is_a_file(make_registry):
    """A plain file where a repository directory would be: requests fail cleanly and
    never reveal the storage path."""
    reg = make_registry(before_prepare=lambda root: (root / "filerepo").write_text("not a dir"))
    checks = [
        ("GET", "/v2/filerepo/tags/list", None),
        ("GET", "/v2/filerepo/manifests/v1", None),
        ("POST", "/v2/filerepo/blobs/uploads/", None),
        ("POST", f"/v2/filerepo/blobs/uploads/?digest={digest_of(b'x')}", b"x"),
        ("GET", "/v2/_catalog", None),
    ]
    for method, path, data in checks:
        resp = reg.request(method, path, data=data, headers=OCTET, check=False)
        body = resp.get_data()
        assert str(reg.root).encode() not in body, (method, path, body)
        assert not any(str(reg.root) in v for v in resp.headers.values())
        if method == "GET" and path != "/v2/_catalog":
            assert resp.status_code == 404, (method, path, resp.status_code)
        elif method == "POST":
            assert resp.status_code >= 400, (method, path, resp.status_code)
        else:
            assert resp.status_code == 200
            assert "filerepo" not in (resp.get_json().get("repositories") or [])


def test_blob_file_removed_behind_the_registry(reg):
    """A blob deleted on disk (e.g. by an operator) is unknown, not a 500."""
    data = os.urandom(100)
    dig = digest_of(data)
    reg.push_blob("repo", data)
    path = reg.root / "repo" / "blobs" / "sha256" / dig.split(":")[1]
    path.unlink()
    assert reg.get(f"/v2/repo/blobs/{dig}").status_code == 404
    assert reg.head(f"/v2/repo/blobs/{dig}").status_code == 404
    reg.push_blob("repo", data)
    assert reg.get(f"/v2/repo/blobs/{dig}").get_data() == data


def test_manifest_file_removed_behind_the_registry(reg):
    img = reg.push_image("repo", "v1")
    (reg.root / "repo" / "blobs" / "sha256" / img.digest.split(":")[1]).unlink()
    resp = reg.get("/v2/repo/manifests/v1")
    assert resp.status_code == 404
    assert reg.put_manifest("repo", "v1", img.raw).status_code == 201
    assert reg.get("/v2/repo/manifests/v1").get_data() == img.raw


def test_dedupe_source_removed_behind_the_registry(make_registry):
    """The dedupe index points at a copy that vanished: a new push still stores the blob."""
    reg = make_registry(dedupe=True)
    data = os.urandom(300)
    dig = digest_of(data)
    reg.push_blob("one", data)
    (reg.root / "one" / "blobs" / "sha256" / dig.split(":")[1]).unlink()
    reg.push_blob("two", data)
    assert reg.get(f"/v2/two/blobs/{dig}").get_data() == data
    assert Path(reg.root / "two" / "blobs" / "sha256" / dig.split(":")[1]).read_bytes() == data


def test_accept_header_does_not_change_bytes(reg):
    img = reg.push_image("repo", "v1")
    for accept in (OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json",
                   "*/*"):
        resp = reg.get("/v2/repo/manifests/v1", headers={"Accept": accept})
        assert resp.status_code in (200, 404, 406)
        if resp.status_code == 200:
            assert resp.get_data() == img.raw


@pytest.mark.parametrize("name", ["manifests", "a/manifests", "a/manifests/b", "tags", "a/tags/list",
                                  "referrers", "a/referrers", "uploads", "a/uploads", "v2", "a/v2/b",
                                  "sha256", "blobs", "index.json"])
def test_names_with_route_keywords(reg, name):
    """Repository names made of route words are valid and must route unambiguously."""
    parent = reg.push_image("a", "parent")
    img = reg.push_image(name, "v1")
    _intact(reg, name, "v1", img)
    resp = reg.get(f"/v2/{name}/tags/list")
    assert resp.get_json() == {"name": name, "tags": ["v1"]}
    assert reg.tags("a") == ["parent"]
    _intact(reg, "a", "parent", parent)
    art = reg.artifact_manifest(name, "application/x", img)
    assert reg.put_manifest(name, art.digest, art.raw).status_code == 201
    refs = reg.get(f"/v2/{name}/referrers/{img.digest}").get_json()["manifests"]
    assert [d["digest"] for d in refs] == [art.digest]
    loc = reg.start_upload(name)
    assert reg.get(loc).status_code == 204
    assert name in reg.catalog()
