"""Two app instances over one root, as two gunicorn workers: each sees the other's writes
at once (tags, catalog, referrers, blobs, uploads, deletes)."""

from __future__ import annotations

import os

from oci_api_client import assert_error, digest_of, path_of, with_query

OCTET = {"Content-Type": "application/octet-stream"}


def test_writes_visible_to_other_worker(make_registry):
    one, two = make_registry(), make_registry()
    img = one.push_image("repo", "v1")
    assert two.tags("repo") == ["v1"]
    assert two.catalog() == ["repo"]
    assert two.get("/v2/repo/manifests/v1").get_data() == img.raw
    art = two.artifact_manifest("repo", "application/x", img)
    assert two.put_manifest("repo", art.digest, art.raw).status_code == 201
    refs = one.get(f"/v2/repo/referrers/{img.digest}").get_json()["manifests"]
    assert [d["digest"] for d in refs] == [art.digest]
    img2 = two.push_image("repo", "v1")  # re-point the tag from the other worker
    assert one.get("/v2/repo/manifests/v1").get_data() == img2.raw
    assert one.delete("/v2/repo/manifests/v1").status_code == 202
    assert two.tags("repo") == []
    assert_error(two.get("/v2/repo/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    two.push_image("other", "x")
    assert one.catalog() == ["other", "repo"]


def test_upload_across_workers(make_registry):
    one, two = make_registry(), make_registry()
    data = os.urandom(120)
    loc = one.start_upload("repo")
    r = two.patch_chunk(loc, data[:60], 0)
    assert r.status_code == 202
    r = one.patch_chunk(path_of(r.headers["Location"]), data[60:], 60)
    assert r.status_code == 202 and r.headers["Range"] == "0-119"
    resp = two.put(with_query(path_of(r.headers["Location"]), digest=digest_of(data)), data=b"",
                   headers=OCTET)
    assert resp.status_code == 201
    assert one.get(f"/v2/repo/blobs/{digest_of(data)}").get_data() == data


def test_blob_delete_across_workers(make_registry):
    one, two = make_registry(dedupe=True), make_registry(dedupe=True)
    data = os.urandom(99)
    dig = digest_of(data)
    one.push_blob("a", data)
    two.push_blob("b", data)
    assert two.delete(f"/v2/a/blobs/{dig}").status_code == 202
    assert one.get(f"/v2/a/blobs/{dig}").status_code == 404
    assert one.get(f"/v2/b/blobs/{dig}").get_data() == data
    assert one.delete(f"/v2/b/blobs/{dig}").status_code == 202
    two.push_blob("c", data)
    assert one.get(f"/v2/c/blobs/{dig}").get_data() == data


def test_blob_in_use_across_workers(make_registry):
    one, two = make_registry(), make_registry()
    img = one.push_image("repo", "v1")
    layer = img.doc["layers"][0]["digest"]
    assert_error(two.delete(f"/v2/repo/blobs/{layer}"), 405, "DENIED")
    assert two.delete(f"/v2/repo/manifests/{img.digest}").status_code == 202
    assert one.delete(f"/v2/repo/blobs/{layer}").status_code == 202


def test_restart_keeps_everything(make_registry):
    one = make_registry()
    img = one.push_image("a/b", "v1")
    one.push_image("c", "v2")
    again = make_registry()
    assert again.catalog() == ["a/b", "c"]
    assert again.tags("a/b") == ["v1"]
    assert again.get("/v2/a/b/manifests/v1").get_data() == img.raw
    for blob in img.blobs:
        assert again.get(f"/v2/a/b/blobs/{digest_of(blob)}").get_data() == blob
