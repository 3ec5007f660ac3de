"""Blob uploads: every push style, session handling, mounts and their error cases."""

from __future__ import annotations

import io
import os
import re
import uuid

import pytest

from oci_api_client import (
    PUSH_STYLES,
    assert_error,
    blob_files,
    digest_of,
    path_of,
    with_query,
)

OCTET = {"Content-Type": "application/octet-stream"}
BLOB = os.urandom(100)
DIG = digest_of(BLOB)


def _assert_readable(reg, repo, data, alg="sha256"):
    dig = digest_of(data, alg)
    resp = reg.get(f"/v2/{repo}/blobs/{dig}")
    assert resp.status_code == 200, resp.get_data()
    assert resp.get_data() == data
    assert resp.headers["Docker-Content-Digest"] == dig


@pytest.mark.parametrize("alg", ["sha256", "sha512"])
@pytest.mark.parametrize("size", [0, 1, 2, 100, 1000])
@pytest.mark.parametrize("style", PUSH_STYLES)
def test_push_styles(reg, style, size, alg):
    data = os.urandom(size)
    dig = digest_of(data, alg)
    resp = reg.push_blob("repo", data, style, alg=alg)
    assert resp.status_code == 201
    assert resp.headers["Docker-Content-Digest"] == dig
    location = resp.headers["Location"]
    assert path_of(location).endswith(f"/v2/repo/blobs/{dig}")
    got = reg.get(path_of(location))
    assert got.status_code == 200 and got.get_data() == data
    _assert_readable(reg, "repo", data, alg)


@pytest.mark.parametrize("style", PUSH_STYLES)
def test_push_styles_nested_name(reg, style):
    reg.push_blob("a/b/c", BLOB, style)
    _assert_readable(reg, "a/b/c", BLOB)


@pytest.mark.parametrize("style", PUSH_STYLES)
def test_push_twice_is_idempotent(reg, style):
    reg.push_blob("repo", BLOB, style)
    reg.push_blob("repo", BLOB, style)
    _assert_readable(reg, "repo", BLOB)


def test_emptyjson_blob(reg):
    resp = reg.push_blob("repo", b"{}")
    assert resp.headers["Docker-Content-Digest"] == \
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    _assert_readable(reg, "repo", b"{}")


def test_post_opens_session(reg):
    resp = reg.post("/v2/repo/blobs/uploads/", headers={"Content-Length": "0"})
    assert resp.status_code == 202
    loc = path_of(resp.headers["Location"])
    assert re.match(r"^/v2/repo/blobs/uploads/[^/?]+", loc), loc
    assert resp.headers.get("Range") == "0-0"
    uid = resp.headers.get("Docker-Upload-UUID") or resp.headers.get("Blob-Upload-UUID")
    if uid:
        assert uid in loc


def test_post_sessions_are_unique(reg):
    assert reg.start_upload("repo") != reg.start_upload("repo")


def test_upload_status(reg):
    loc = reg.start_upload("repo")
    resp = reg.get(loc)
    assert resp.status_code == 204
    assert re.match(r"^0-\d+$", resp.headers["Range"]), resp.headers
    assert resp.headers.get("Location")
    r = reg.patch_chunk(loc, BLOB[:10], 0)
    assert r.status_code == 202
    loc = path_of(r.headers["Location"])
    resp = reg.get(loc)
    assert resp.status_code == 204
    assert resp.headers["Range"] == "0-9"
    assert resp.get_data() == b""


def test_chunked_ranges_and_locations(reg):
    loc = reg.start_upload("repo")
    offset = 0
    for size in (10, 1, 39, 50):
        r = reg.patch_chunk(loc, BLOB[offset:offset + size], offset)
        assert r.status_code == 202
        offset += size
        assert r.headers["Range"] == f"0-{offset - 1}"
        assert r.headers["Location"]
        loc = path_of(r.headers["Location"])
    resp = reg.put(with_query(loc, digest=DIG), data=b"", headers=OCTET)
    assert resp.status_code == 201
    _assert_readable(reg, "repo", BLOB)


def test_chunked_put_with_final_chunk(reg):
    loc = reg.start_upload("repo")
    r = reg.patch_chunk(loc, BLOB[:60], 0)
    loc = path_of(r.headers["Location"])
    resp = reg.put(with_query(loc, digest=DIG), data=BLOB[60:],
                   headers={**OCTET, "Content-Range": "60-99"})
    assert resp.status_code == 201
    _assert_readable(reg, "repo", BLOB)


def test_put_final_chunk_without_content_range(reg):
    loc = reg.start_upload("repo")
    r = reg.patch_chunk(loc, BLOB[:60], 0)
    loc = path_of(r.headers["Location"])
    resp = reg.put(with_query(loc, digest=DIG), data=BLOB[60:], headers=OCTET)
    assert resp.status_code == 201
    _assert_readable(reg, "repo", BLOB)


@pytest.mark.parametrize("bad_start", ["skip_ahead", "restart", "overlap", "first_chunk_not_zero"])
def test_out_of_order_chunk(reg, bad_start):
    loc = reg.start_upload("repo")
    if bad_start == "first_chunk_not_zero":
        done = 0
        bad = (10, BLOB[10:20])
    else:
        r = reg.patch_chunk(loc, BLOB[:40], 0)
        assert r.status_code == 202
        loc = path_of(r.headers["Location"])
        done = 40
        bad = {"skip_ahead": (50, BLOB[50:60]), "restart": (0, BLOB[:40]),
               "overlap": (30, BLOB[30:60])}[bad_start]
    resp = reg.patch_chunk(loc, bad[1], bad[0])
    assert resp.status_code == 416, resp.get_data()
    if done:
        assert resp.headers.get("Range") == f"0-{done - 1}"
    # the session is intact: status, then continue in order and finish
    status = reg.get(loc)
    assert status.status_code == 204
    if done:
        assert status.headers["Range"] == f"0-{done - 1}"
    r = reg.patch_chunk(loc, BLOB[done:], done)
    assert r.status_code == 202
    loc = path_of(r.headers["Location"])
    assert reg.put(with_query(loc, digest=DIG), data=b"", headers=OCTET).status_code == 201
    _assert_readable(reg, "repo", BLOB)


def test_out_of_order_final_put(reg):
    loc = reg.start_upload("repo")
    r = reg.patch_chunk(loc, BLOB[:40], 0)
    loc = path_of(r.headers["Location"])
    resp = reg.put(with_query(loc, digest=DIG), data=BLOB[50:],
                   headers={**OCTET, "Content-Range": "50-99"})
    assert resp.status_code == 416
    assert reg.get(f"/v2/repo/blobs/{DIG}").status_code == 404
    status = reg.get(loc)
    assert status.status_code == 204 and status.headers["Range"] == "0-39"


@pytest.mark.parametrize("content_range", ["0-99", "0-10", "1-50", "0-48"])
def test_content_range_length_mismatch(reg, content_range):
    """A Content-Range that does not describe the body (50 bytes) is refused."""
    loc = reg.start_upload("repo")
    resp = reg.patch(loc, data=BLOB[:50], headers={**OCTET, "Content-Range": content_range})
    assert resp.status_code in (400, 416), resp.status_code
    status = reg.get(loc)
    assert status.status_code == 204
    assert status.headers["Range"] in ("0-0", "0--1")


def test_streamed_patches_append(reg):
    loc = reg.start_upload("repo")
    for part in (BLOB[:30], BLOB[30:31], BLOB[31:]):
        r = reg.patch(loc, data=part, headers=OCTET)
        assert r.status_code == 202
        loc = path_of(r.headers["Location"])
    assert r.headers["Range"] == "0-99"
    assert reg.put(with_query(loc, digest=DIG), data=b"", headers=OCTET).status_code == 201
    _assert_readable(reg, "repo", BLOB)


def test_streamed_patch_transfer_encoding_chunked(reg, stream_environ):
    loc = reg.start_upload("repo")
    r = reg.patch(loc, input_stream=io.BytesIO(BLOB),
                  headers={**OCTET, "Transfer-Encoding": "chunked"},
                  environ_overrides=stream_environ)
    assert r.status_code == 202, r.get_data()
    assert r.headers["Range"] == "0-99"
    loc = path_of(r.headers["Location"])
    assert reg.put(with_query(loc, digest=DIG), data=b"", headers=OCTET).status_code == 201
    _assert_readable(reg, "repo", BLOB)


def test_monolithic_transfer_encoding_chunked(reg, stream_environ):
    resp = reg.post(f"/v2/repo/blobs/uploads/?digest={DIG}", input_stream=io.BytesIO(BLOB),
                    headers={**OCTET, "Transfer-Encoding": "chunked"},
                    environ_overrides=stream_environ)
    assert resp.status_code in (201, 202, 400), resp.status_code
    if resp.status_code == 201:
        _assert_readable(reg, "repo", BLOB)


def test_mixed_chunked_then_streamed(reg):
    loc = reg.start_upload("repo")
    r = reg.patch_chunk(loc, BLOB[:20], 0)
    loc = path_of(r.headers["Location"])
    r = reg.patch(loc, data=BLOB[20:], headers=OCTET)
    assert r.status_code == 202 and r.headers["Range"] == "0-99"
    loc = path_of(r.headers["Location"])
    assert reg.put(with_query(loc, digest=DIG), data=b"", headers=OCTET).status_code == 201


# -- wrong digests: nothing stored -----------------------------------------------------

WRONG = digest_of(b"something else entirely")


def _no_stray_files(reg, repo, allowed: set[str]):
    for f in blob_files(reg.root / repo):
        assert f.name in allowed, f"unexpected file {f} after a failed upload"


@pytest.mark.parametrize("style", ["monolithic", "post_put", "chunked", "chunked_put_last", "streamed"])
def test_wrong_digest_rejected_and_nothing_stored(reg, style):
    reg.push_blob("repo", b"keep me")  # the repository exists with one good blob
    kept = digest_of(b"keep me").split(":")[1]
    if style == "monolithic":
        resp = reg.post(f"/v2/repo/blobs/uploads/?digest={WRONG}", data=BLOB, headers=OCTET)
    else:
        loc = reg.start_upload("repo")
        if style == "post_put":
            resp = reg.put(with_query(loc, digest=WRONG), data=BLOB, headers=OCTET)
        elif style == "chunked":
            r = reg.patch_chunk(loc, BLOB, 0)
            resp = reg.put(with_query(path_of(r.headers["Location"]), digest=WRONG), data=b"",
                           headers=OCTET)
        elif style == "chunked_put_last":
            r = reg.patch_chunk(loc, BLOB[:50], 0)
            resp = reg.put(with_query(path_of(r.headers["Location"]), digest=WRONG),
                           data=BLOB[50:], headers={**OCTET, "Content-Range": "50-99"})
        else:
            r = reg.patch(loc, data=BLOB, headers=OCTET)
            resp = reg.put(with_query(path_of(r.headers["Location"]), digest=WRONG), data=b"",
                           headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")
    assert_error(reg.get(f"/v2/repo/blobs/{WRONG}"), 404, "BLOB_UNKNOWN")
    assert_error(reg.get(f"/v2/repo/blobs/{DIG}"), 404, "BLOB_UNKNOWN")
    _no_stray_files(reg, "repo", {kept})


def test_wrong_digest_sha512(reg):
    wrong = digest_of(b"other", "sha512")
    resp = reg.post(f"/v2/repo/blobs/uploads/?digest={wrong}", data=BLOB, headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")
    assert reg.get(f"/v2/repo/blobs/{wrong}").status_code == 404


@pytest.mark.parametrize("bad", ["sha256:xyz", "notadigest", "md5:d41d8cd98f00b204e9800998ecf8427e",
                                 "sha256:" + "a" * 63, "sha256:" + "A" * 64, ""])
def test_monolithic_malformed_digest(reg, bad):
    resp = reg.post(f"/v2/repo/blobs/uploads/?digest={bad}", data=BLOB, headers=OCTET)
    if bad == "":
        # an empty digest parameter: refused, or treated as a plain session start
        assert resp.status_code in (202, 400)
    else:
        assert_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("bad", ["sha256:xyz", "notadigest", "sha256:" + "a" * 63])
def test_put_malformed_digest(reg, bad):
    loc = reg.start_upload("repo")
    resp = reg.put(with_query(loc, digest=bad), data=BLOB, headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")


def test_put_without_digest(reg):
    loc = reg.start_upload("repo")
    resp = reg.put(loc, data=BLOB, headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID", "BLOB_UPLOAD_INVALID", "UNSUPPORTED")
    assert reg.get(f"/v2/repo/blobs/{DIG}").status_code == 404


def test_put_with_two_digests(reg):
    loc = reg.start_upload("repo")
    resp = reg.put(f"{loc}?digest={DIG}&digest={WRONG}", data=BLOB, headers=OCTET)
    assert resp.status_code == 400


def test_session_usable_after_failed_digest(reg):
    """After DIGEST_INVALID the session is either gone (404) or still usable."""
    loc = reg.start_upload("repo")
    r = reg.patch_chunk(loc, BLOB, 0)
    loc = path_of(r.headers["Location"])
    assert reg.put(with_query(loc, digest=WRONG), data=b"", headers=OCTET).status_code == 400
    status = reg.get(loc)
    assert status.status_code in (204, 404)
    if status.status_code == 404:
        assert_error(status, 404, "BLOB_UPLOAD_UNKNOWN")


# -- cancel and unknown sessions --------------------------------------------------------

def test_cancel_upload(reg):
    loc = reg.start_upload("repo")
    r = reg.patch_chunk(loc, BLOB[:10], 0)
    loc = path_of(r.headers["Location"])
    resp = reg.delete(loc)
    assert resp.status_code == 204
    assert_error(reg.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.patch_chunk(loc, BLOB[10:20], 10), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.put(with_query(loc, digest=DIG), data=BLOB, headers=OCTET), 404,
                 "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.delete(loc), 404, "BLOB_UPLOAD_UNKNOWN")


def test_completed_session_is_gone(reg):
    loc = reg.start_upload("repo")
    assert reg.put(with_query(loc, digest=DIG), data=BLOB, headers=OCTET).status_code == 201
    assert_error(reg.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.patch_chunk(loc, BLOB, 0), 404, "BLOB_UPLOAD_UNKNOWN")


BAD_SESSION_IDS = [
    str(uuid.uuid4()),
    "garbage",
    "a" * 300,
    "...",
    "..",
    ".",
    "%2e%2e",
    "..%5c..%5cetc",
    "%00",
    "abc%00def",
    "~root",
    "$(id)",
    "a b",
    "%ff%fe",
    "index.json",
    "oci-layout",
]


@pytest.mark.parametrize("sid", BAD_SESSION_IDS)
@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_unknown_session_ids(reg, sid, method):
    reg.push_blob("repo", b"exists")
    path = f"/v2/repo/blobs/uploads/{sid}"
    if method == "PUT":
        path += f"?digest={DIG}"
    resp = reg.request(method, path, data=BLOB if method in ("PATCH", "PUT") else None,
                       headers=OCTET)
    assert resp.status_code in (400, 404), (sid, method, resp.status_code)
    if sid not in (".", "..", "%2e%2e"):
        assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    assert reg.get(f"/v2/repo/blobs/{DIG}").status_code == 404


@pytest.mark.parametrize("sid", ["../../etc", "..%2F..%2Fetc", "../../../../tmp/x", "a/../../b"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_session_ids_with_slashes(reg, sid, method):
    reg.push_blob("repo", b"exists")
    path = f"/v2/repo/blobs/uploads/{sid}"
    if method == "PUT":
        path += f"?digest={DIG}"
    resp = reg.request(method, path, data=BLOB if method in ("PATCH", "PUT") else None,
                       headers=OCTET)
    assert 400 <= resp.status_code < 500, (sid, method, resp.status_code)


def test_session_bound_to_repository(reg):
    loc_a = reg.start_upload("repo-a")
    reg.start_upload("repo-b")
    sid = loc_a.split("?")[0].rstrip("/").split("/")[-1]
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        path = f"/v2/repo-b/blobs/uploads/{sid}"
        if method == "PUT":
            path += f"?digest={DIG}"
        resp = reg.request(method, path, data=BLOB if method in ("PATCH", "PUT") else None,
                           headers=OCTET)
        assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    assert reg.get(f"/v2/repo-b/blobs/{DIG}").status_code == 404
    # still usable where it was opened
    assert reg.get(loc_a).status_code == 204
    resp = reg.put(with_query(loc_a, digest=DIG), data=BLOB, headers=OCTET)
    assert resp.status_code == 201
    _assert_readable(reg, "repo-a", BLOB)


def test_session_bound_to_repository_unknown_repo(reg):
    loc_a = reg.start_upload("repo-a")
    sid = loc_a.split("?")[0].rstrip("/").split("/")[-1]
    resp = reg.get(f"/v2/never-created/blobs/uploads/{sid}")
    assert resp.status_code == 404
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN", "NAME_UNKNOWN")


def test_sessions_survive_restart(make_registry):
    reg1 = make_registry()
    loc = reg1.start_upload("repo")
    r = reg1.patch_chunk(loc, BLOB[:40], 0)
    loc = path_of(r.headers["Location"])
    reg2 = make_registry()  # a fresh app over the same root, as after a restart
    status = reg2.get(loc)
    assert status.status_code == 204 and status.headers["Range"] == "0-39"
    r = reg2.patch_chunk(loc, BLOB[40:], 40)
    assert r.status_code == 202
    resp = reg2.put(with_query(path_of(r.headers["Location"]), digest=DIG), data=b"",
                    headers=OCTET)
    assert resp.status_code == 201
    _assert_readable(reg2, "repo", BLOB)


def test_parallel_sessions_same_blob(reg):
    locs = [reg.start_upload("repo") for _ in range(3)]
    for loc in locs:
        r = reg.patch_chunk(loc, BLOB, 0)
        assert r.status_code == 202
    for loc in locs:
        r = reg.put(with_query(loc, digest=DIG), data=b"", headers=OCTET)
        assert r.status_code == 201
    _assert_readable(reg, "repo", BLOB)


# -- mounts ------------------------------------------------------------------------------

def test_mount_present(reg):
    reg.push_blob("src", BLOB)
    resp = reg.post(f"/v2/dst/blobs/uploads/?mount={DIG}&from=src")
    assert resp.status_code == 201
    assert path_of(resp.headers["Location"]).endswith(f"/v2/dst/blobs/{DIG}")
    assert resp.headers["Docker-Content-Digest"] == DIG
    _assert_readable(reg, "dst", BLOB)
    _assert_readable(reg, "src", BLOB)


def test_mount_then_delete_each(reg):
    reg.push_blob("src", BLOB)
    assert reg.post(f"/v2/dst/blobs/uploads/?mount={DIG}&from=src").status_code == 201
    assert reg.delete(f"/v2/dst/blobs/{DIG}").status_code == 202
    assert reg.get(f"/v2/dst/blobs/{DIG}").status_code == 404
    _assert_readable(reg, "src", BLOB)
    assert reg.delete(f"/v2/src/blobs/{DIG}").status_code == 202
    assert reg.get(f"/v2/src/blobs/{DIG}").status_code == 404


def test_mount_sha512(reg):
    data = os.urandom(77)
    dig = digest_of(data, "sha512")
    reg.push_blob("src", data, alg="sha512")
    resp = reg.post(f"/v2/dst/blobs/uploads/?mount={dig}&from=src")
    assert resp.status_code in (201, 202)
    if resp.status_code == 201:
        assert resp.headers["Docker-Content-Digest"] == dig
        _assert_readable(reg, "dst", data, "sha512")


def test_mount_absent_falls_back_to_session(reg):
    reg.push_blob("src", b"other")
    resp = reg.post(f"/v2/dst/blobs/uploads/?mount={DIG}&from=src")
    assert resp.status_code == 202
    loc = path_of(resp.headers["Location"])
    assert "/v2/dst/blobs/uploads/" in loc
    assert reg.put(with_query(loc, digest=DIG), data=BLOB, headers=OCTET).status_code == 201
    _assert_readable(reg, "dst", BLOB)


def test_mount_from_unknown_repo_falls_back(reg):
    resp = reg.post(f"/v2/dst/blobs/uploads/?mount={DIG}&from=nosuchrepo")
    assert resp.status_code == 202
    assert "/v2/dst/blobs/uploads/" in path_of(resp.headers["Location"])


def test_mount_deleted_source_blob_falls_back(reg):
    reg.push_blob("src", BLOB)
    assert reg.delete(f"/v2/src/blobs/{DIG}").status_code == 202
    resp = reg.post(f"/v2/dst/blobs/uploads/?mount={DIG}&from=src")
    assert resp.status_code == 202
    assert reg.get(f"/v2/dst/blobs/{DIG}").status_code == 404


def test_mount_without_from(reg):
    """The spec lets a registry mount without `from` (201) or open a session (202)."""
    reg.push_blob("src", BLOB)
    resp = reg.post(f"/v2/dst/blobs/uploads/?mount={DIG}")
    assert resp.status_code in (201, 202)
    if resp.status_code == 201:
        _assert_readable(reg, "dst", BLOB)


def test_from_without_mount(reg):
    reg.push_blob("src", BLOB)
    resp = reg.post("/v2/dst/blobs/uploads/?from=src")
    assert resp.status_code in (400, 405), resp.status_code


@pytest.mark.parametrize("bad", ["sha256:xyz", "garbage", "sha256:" + "a" * 63])
def test_mount_malformed_digest(reg, bad):
    reg.push_blob("src", BLOB)
    resp = reg.post(f"/v2/dst/blobs/uploads/?mount={bad}&from=src")
    assert resp.status_code in (202, 400)
    if resp.status_code == 400:
        assert_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("bad_from", ["UPPER", "../src", "a//b", "-x"])
def test_mount_malformed_from(reg, bad_from):
    reg.push_blob("src", BLOB)
    resp = reg.post(f"/v2/dst/blobs/uploads/?mount={DIG}&from={bad_from}")
    assert resp.status_code in (202, 400, 404)
    assert reg.get(f"/v2/dst/blobs/{DIG}").status_code == 404


# -- sha512 -------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["monolithic", "post_put", "chunked", "streamed"])
def test_sha512_stored_under_sha512(reg, style):
    data = os.urandom(300)
    dig = digest_of(data, "sha512")
    resp = reg.push_blob("repo", data, style, alg="sha512")
    assert resp.headers["Docker-Content-Digest"] == dig
    path = reg.root / "repo" / "blobs" / "sha512" / dig.split(":")[1]
    assert path.is_file() and path.read_bytes() == data
    head = reg.head(f"/v2/repo/blobs/{dig}")
    assert head.status_code == 200 and head.headers["Docker-Content-Digest"] == dig


def test_chunked_patch_with_transfer_encoding(reg, stream_environ):
    """A PATCH carrying Content-Range but no Content-Length (chunked transfer encoding)."""
    loc = reg.start_upload("repo")
    r = reg.patch_chunk(loc, BLOB[:30], 0)
    loc = path_of(r.headers["Location"])
    r = reg.patch(loc, input_stream=io.BytesIO(BLOB[30:]),
                  headers={**OCTET, "Transfer-Encoding": "chunked", "Content-Range": "30-99"},
                  environ_overrides=stream_environ)
    assert r.status_code == 202, r.get_data()
    assert r.headers["Range"] == "0-99"
    resp = reg.put(with_query(path_of(r.headers["Location"]), digest=DIG), data=b"", headers=OCTET)
    assert resp.status_code == 201
    _assert_readable(reg, "repo", BLOB)


def test_put_final_chunk_transfer_encoding(reg, stream_environ):
    loc = reg.start_upload("repo")
    resp = reg.put(with_query(loc, digest=DIG), input_stream=io.BytesIO(BLOB),
                   headers={**OCTET, "Transfer-Encoding": "chunked"},
                   environ_overrides=stream_environ)
    assert resp.status_code == 201, resp.get_data()
    _assert_readable(reg, "repo", BLOB)
