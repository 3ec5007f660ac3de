"""Blob reads (GET, HEAD, Range) and deletes."""

from __future__ import annotations

import os

import pytest

from oci_api_client import assert_error, digest_of

BLOB = os.urandom(2048)
DIG = digest_of(BLOB)


@pytest.fixture
def pushed(reg):
    reg.push_blob("repo", BLOB)
    return reg


def test_get_full(pushed):
    resp = pushed.get(f"/v2/repo/blobs/{DIG}")
    assert resp.status_code == 200
    assert resp.get_data() == BLOB
    assert resp.headers["Docker-Content-Digest"] == DIG
    assert resp.headers["Content-Length"] == str(len(BLOB))
    assert resp.headers.get("Accept-Ranges") == "bytes"
    assert resp.headers.get("Content-Type")


def test_unreferenced_blob_content_type_is_octet_stream(pushed):
    resp = pushed.get(f"/v2/repo/blobs/{DIG}")
    assert resp.headers["Content-Type"] == "application/octet-stream"


def test_head(pushed):
    resp = pushed.head(f"/v2/repo/blobs/{DIG}")
    assert resp.status_code == 200
    assert resp.get_data() == b""
    assert resp.headers["Content-Length"] == str(len(BLOB))
    assert resp.headers["Docker-Content-Digest"] == DIG
    assert resp.headers.get("Accept-Ranges") == "bytes"


RANGES = [
    ("bytes=500-1499", 500, 1499),
    ("bytes=0-0", 0, 0),
    ("bytes=0-2047", 0, 2047),
    ("bytes=500-", 500, 2047),
    ("bytes=-500", 1548, 2047),
    ("bytes=2047-", 2047, 2047),
    ("bytes=2000-5000", 2000, 2047),  # end clamped to the last byte
    ("bytes=-5000", 0, 2047),  # suffix longer than the blob: the whole blob
]


@pytest.mark.parametrize("header,start,end", RANGES)
def test_single_range(pushed, header, start, end):
    resp = pushed.get(f"/v2/repo/blobs/{DIG}", headers={"Range": header})
    assert resp.status_code == 206, (header, resp.status_code)
    assert resp.get_data() == BLOB[start:end + 1]
    assert resp.headers["Content-Length"] == str(end - start + 1)
    assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(BLOB)}"


@pytest.mark.parametrize("header", ["bytes=5000-10000", "bytes=2048-", "bytes=500-0", "bytes=5-2",
                                    "bytes=-0"])
def test_unsatisfiable_range(pushed, header):
    resp = pushed.get(f"/v2/repo/blobs/{DIG}", headers={"Range": header})
    assert resp.status_code == 416, (header, resp.status_code)
    assert resp.headers["Content-Range"] == f"bytes */{len(BLOB)}"


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=", "bytes=-", "items=0-5", "bytes=0-1,x",
                                    "bytes=1-2-3", "bytes=99999999999999999999999-",
                                    "bytes=0-99999999999999999999999", "garbage"])
def test_malformed_range_never_corrupts(pushed, header):
    resp = pushed.get(f"/v2/repo/blobs/{DIG}", headers={"Range": header})
    assert resp.status_code in (200, 206, 400, 416), (header, resp.status_code)
    if resp.status_code == 200:
        assert resp.get_data() == BLOB
    if resp.status_code == 206:
        body = resp.get_data()
        assert len(body) == int(resp.headers["Content-Length"])


def test_multi_range(pushed):
    resp = pushed.get(f"/v2/repo/blobs/{DIG}", headers={"Range": "bytes=0-9,100-109"})
    assert resp.status_code in (200, 206, 416)
    if resp.status_code == 200:
        assert resp.get_data() == BLOB
    if resp.status_code == 206:
        body = resp.get_data()
        assert BLOB[0:10] in body and BLOB[100:110] in body


def test_range_on_head(pushed):
    resp = pushed.head(f"/v2/repo/blobs/{DIG}", headers={"Range": "bytes=0-9"})
    assert resp.status_code in (200, 206)
    assert resp.get_data() == b""


def test_range_on_empty_blob(reg):
    reg.push_blob("repo", b"")
    dig = digest_of(b"")
    full = reg.get(f"/v2/repo/blobs/{dig}")
    assert full.status_code == 200 and full.get_data() == b""
    assert full.headers["Content-Length"] == "0"
    resp = reg.get(f"/v2/repo/blobs/{dig}", headers={"Range": "bytes=0-"})
    assert resp.status_code in (200, 416)


def test_unknown_blob(pushed):
    other = digest_of(b"never pushed")
    assert_error(pushed.get(f"/v2/repo/blobs/{other}"), 404, "BLOB_UNKNOWN")
    assert pushed.head(f"/v2/repo/blobs/{other}").status_code == 404


def test_unknown_repo_blob(reg):
    resp = reg.get(f"/v2/nosuch/blobs/{DIG}")
    assert_error(resp, 404, "BLOB_UNKNOWN", "NAME_UNKNOWN")
    assert reg.head(f"/v2/nosuch/blobs/{DIG}").status_code == 404


MALFORMED_DIGESTS = [
    "notadigest",
    "sha256:",
    "sha256:xyz",
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha256:" + "A" * 64,
    "sha256:" + "g" * 64,
    "sha512:" + "a" * 64,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "foo:" + "a" * 64,
    ":" + "a" * 64,
    "sha256" + "a" * 64,
    "SHA256:" + "a" * 64,
]


@pytest.mark.parametrize("bad", MALFORMED_DIGESTS)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_malformed_digest(pushed, bad, method):
    resp = pushed.request(method, f"/v2/repo/blobs/{bad}")
    assert_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("bad", MALFORMED_DIGESTS)
def test_malformed_digest_head(pushed, bad):
    assert pushed.head(f"/v2/repo/blobs/{bad}").status_code == 400


def test_delete(pushed):
    resp = pushed.delete(f"/v2/repo/blobs/{DIG}")
    assert resp.status_code == 202
    assert_error(pushed.get(f"/v2/repo/blobs/{DIG}"), 404, "BLOB_UNKNOWN")
    assert pushed.head(f"/v2/repo/blobs/{DIG}").status_code == 404
    assert_error(pushed.delete(f"/v2/repo/blobs/{DIG}"), 404, "BLOB_UNKNOWN")


def test_delete_unknown(reg):
    reg.push_blob("repo", b"something")
    assert_error(reg.delete(f"/v2/repo/blobs/{DIG}"), 404, "BLOB_UNKNOWN")


def test_delete_unknown_repo(reg):
    resp = reg.delete(f"/v2/nosuch/blobs/{DIG}")
    assert_error(resp, 404, "BLOB_UNKNOWN", "NAME_UNKNOWN")


def test_repush_after_delete(pushed):
    assert pushed.delete(f"/v2/repo/blobs/{DIG}").status_code == 202
    pushed.push_blob("repo", BLOB)
    assert pushed.get(f"/v2/repo/blobs/{DIG}").get_data() == BLOB


@pytest.mark.parametrize("part", ["config", "layer"])
def test_delete_referenced_blob_denied(reg, part):
    img = reg.push_image("repo", "v1")
    desc = img.doc["config"] if part == "config" else img.doc["layers"][0]
    resp = reg.delete(f"/v2/repo/blobs/{desc['digest']}")
    assert_error(resp, 405, "DENIED")
    assert reg.get(f"/v2/repo/blobs/{desc['digest']}").status_code == 200


def test_delete_allowed_after_manifest_deleted(reg):
    img = reg.push_image("repo", "v1")
    layer = img.doc["layers"][0]["digest"]
    assert reg.delete(f"/v2/repo/manifests/{img.digest}").status_code == 202
    assert reg.delete(f"/v2/repo/blobs/{layer}").status_code == 202
    assert reg.get(f"/v2/repo/blobs/{layer}").status_code == 404


def test_referenced_in_other_repo_does_not_block_delete(reg):
    img = reg.push_image("other", "v1")
    layer_data = img.blobs[1]
    reg.push_blob("repo", layer_data)
    dig = digest_of(layer_data)
    assert reg.delete(f"/v2/repo/blobs/{dig}").status_code == 202
    assert reg.get(f"/v2/other/blobs/{dig}").get_data() == layer_data


@pytest.mark.parametrize("dedupe", [True, False])
def test_deleted_blob_not_resurrected_by_copy_elsewhere(make_registry, dedupe):
    reg = make_registry(dedupe=dedupe)
    reg.push_blob("a", BLOB)
    reg.push_blob("b", BLOB)
    assert reg.delete(f"/v2/a/blobs/{DIG}").status_code == 202
    assert_error(reg.get(f"/v2/a/blobs/{DIG}"), 404, "BLOB_UNKNOWN")
    assert reg.head(f"/v2/a/blobs/{DIG}").status_code == 404
    assert_error(reg.get(f"/v2/a/blobs/{DIG}"), 404, "BLOB_UNKNOWN")
    # the other repository keeps its copy
    resp = reg.get(f"/v2/b/blobs/{DIG}")
    assert resp.status_code == 200 and resp.get_data() == BLOB
    # and deleting that one too leaves nothing behind
    assert reg.delete(f"/v2/b/blobs/{DIG}").status_code == 202
    assert reg.get(f"/v2/b/blobs/{DIG}").status_code == 404


def test_blob_content_type_from_referencing_descriptor_or_octet(reg):
    img = reg.push_image("repo", "v1")
    resp = reg.get(f"/v2/repo/blobs/{img.doc['layers'][0]['digest']}")
    assert resp.headers["Content-Type"] in (
        "application/octet-stream", "application/vnd.oci.image.layer.v1.tar+gzip")


def test_get_blob_by_manifest_digest(reg):
    """A manifest is content too: it can be fetched through the blob route (as zot and
    distribution allow) or is unknown there, but never an error other than 404."""
    img = reg.push_image("repo", "v1")
    resp = reg.get(f"/v2/repo/blobs/{img.digest}")
    assert resp.status_code in (200, 404)
    if resp.status_code == 200:
        assert resp.get_data() == img.raw


def test_sha512_blob_read(reg):
    data = os.urandom(1000)
    dig = digest_of(data, "sha512")
    reg.push_blob("repo", data, alg="sha512")
    resp = reg.get(f"/v2/repo/blobs/{dig}")
    assert resp.status_code == 200 and resp.get_data() == data
    assert resp.headers["Docker-Content-Digest"] == dig
    resp = reg.get(f"/v2/repo/blobs/{dig}", headers={"Range": "bytes=10-19"})
    assert resp.status_code == 206 and resp.get_data() == data[10:20]
    assert reg.delete(f"/v2/repo/blobs/{dig}").status_code == 202
    assert reg.get(f"/v2/repo/blobs/{dig}").status_code == 404


@pytest.mark.parametrize("name", ["a/b", "a/b/c/d", "x.y/z_w", "a-b/c--d"])
def test_names_with_slashes(reg, name):
    reg.push_blob(name, BLOB)
    assert reg.get(f"/v2/{name}/blobs/{DIG}").get_data() == BLOB
    assert reg.delete(f"/v2/{name}/blobs/{DIG}").status_code == 202
