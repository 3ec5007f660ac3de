"""A battery of malformed requests: every one answers a 4xx OCI error (never 5xx, never a
filesystem path — the client wrapper checks both) and loses nothing already committed."""

from __future__ import annotations

import os

import pytest

from oci_api_client import OCI_MANIFEST, digest_of, path_of

BLOB = os.urandom(64)
DIG = digest_of(BLOB)


@pytest.fixture
def seeded(reg):
    img = reg.push_image("repo", "v1")
    reg.push_blob("repo", BLOB)
    yield reg, img
    # nothing committed was lost
    got = reg.get("/v2/repo/manifests/v1")
    assert got.status_code == 200 and got.get_data() == img.raw
    assert reg.get(f"/v2/repo/blobs/{DIG}").get_data() == BLOB
    for blob in img.blobs:
        assert reg.get(f"/v2/repo/blobs/{digest_of(blob)}").get_data() == blob
    assert reg.tags("repo") == ["v1"]


NAMES = [
    "UPPER", "a..b", "a//b", "-x", "x-", ".x", "x.", "_x", "x_", "a" * 300, "a/" * 130 + "a",
    "a%00b", "%00", "a b", "a%09b", "a%0Ab", "ä", "a/./b", "a/../b", "..", "../..", "../../etc", "a:b",
    "a@b", "a\\b", "%2e%2e", "%2F", "*", "a%3Fb", "a%23b",
]

DIGESTS = [
    "sha256:", "sha256", ":", ":abc", "sha256:xyz", "sha256:" + "a" * 63, "sha256:" + "a" * 65,
    "sha256:" + "A" * 64, "SHA256:" + "a" * 64, "sha512:" + "a" * 64, "md5:" + "a" * 32,
    "sha256:" + "a" * 64 + "%00", "sha256:..", "sha256:%2e%2e", "sha256:" + "a" * 10000,
    "x" * 5000, "sha256+b64:" + "a" * 43, "sha256:a/b", "%00",
]


def _routes(name: str, digest: str):
    return [
        ("GET", f"/v2/{name}/tags/list", None, {}),
        ("GET", f"/v2/{name}/manifests/v1", None, {}),
        ("HEAD", f"/v2/{name}/manifests/v1", None, {}),
        ("PUT", f"/v2/{name}/manifests/v1", b"{}", {"Content-Type": OCI_MANIFEST}),
        ("DELETE", f"/v2/{name}/manifests/v1", None, {}),
        ("GET", f"/v2/{name}/manifests/{digest}", None, {}),
        ("PUT", f"/v2/{name}/manifests/{digest}", b"{}", {"Content-Type": OCI_MANIFEST}),
        ("DELETE", f"/v2/{name}/manifests/{digest}", None, {}),
        ("GET", f"/v2/{name}/blobs/{digest}", None, {}),
        ("HEAD", f"/v2/{name}/blobs/{digest}", None, {}),
        ("DELETE", f"/v2/{name}/blobs/{digest}", None, {}),
        ("POST", f"/v2/{name}/blobs/uploads/", None, {}),
        ("POST", f"/v2/{name}/blobs/uploads/?digest={digest}", BLOB,
         {"Content-Type": "application/octet-stream"}),
        ("POST", f"/v2/{name}/blobs/uploads/?mount={digest}&from=repo", None, {}),
        ("GET", f"/v2/{name}/referrers/{digest}", None, {}),
        ("GET", f"/v2/{name}/blobs/uploads/whatever", None, {}),
        ("PATCH", f"/v2/{name}/blobs/uploads/whatever", BLOB, {}),
        ("PUT", f"/v2/{name}/blobs/uploads/whatever?digest={digest}", BLOB, {}),
        ("DELETE", f"/v2/{name}/blobs/uploads/whatever", None, {}),
    ]


@pytest.mark.parametrize("name", NAMES)
def test_malformed_names(seeded, name):
    reg, _ = seeded
    for method, path, data, headers in _routes(name, DIG):
        # a redirect (e.g. merging "//") is fine as long as where it leads is an error
        resp = reg.request(method, path, data=data, headers=headers, follow_redirects=True)
        assert 400 <= resp.status_code < 500, (method, path, resp.status_code)
    catalog = reg.catalog()
    assert catalog == ["repo"], catalog


@pytest.mark.parametrize("digest", DIGESTS)
def test_malformed_digests(seeded, digest):
    reg, _ = seeded
    for method, path, data, headers in _routes("repo", digest):
        if path.endswith("/manifests/v1") or path.endswith("/tags/list") or \
                path.endswith("/blobs/uploads/") or "uploads/whatever" in path and "digest=" not in path:
            continue  # those do not carry the digest
        resp = reg.request(method, path, data=data, headers=headers)
        assert 400 <= resp.status_code < 500 or (
            "mount=" in path and resp.status_code == 202), (method, path, resp.status_code)


RANGES = [
    "bytes=abc", "bytes=5-2", "bytes=0-1,3-4", "bytes=0-1,1-2,2-3,3-4,4-5,5-6,6-7,7-8,8-9,9-10,"
    "10-11,11-12,12-13,13-14,14-15,15-16,16-17,17-18", "bytes=", "bytes=-", "bytes=--1",
    "items=0-1", "bytes=99999999999999999999-", "bytes=-99999999999999999999", "bytes= 0-1",
    "bytes=0-1 ", "bytes=1-0", "bytes=-0", "bytes=0--1", "bytes=+1-2", "bytes=0x1-0x2",
    "bytes=1e3-2e3", "bytes=٣-٤", "\x00", "bytes=0-1,", ",", "bytes=0-" + "9" * 400,
]


@pytest.mark.parametrize("rng", RANGES)
def test_malformed_ranges(seeded, rng):
    reg, _ = seeded
    for method in ("GET", "HEAD"):
        resp = reg.request(method, f"/v2/repo/blobs/{DIG}", headers={"Range": rng})
        assert resp.status_code in (200, 206, 400, 416), (rng, resp.status_code)
        if method == "GET" and resp.status_code == 200:
            assert resp.get_data() == BLOB


CONTENT_RANGES = [
    "abc", "0-", "-5", "5-2", "bytes 0-63/64", "bytes=0-63", "0-99999999999999999999",
    "0-63, 64-127", "0 - 63", "0-63/64", "+0-63", "0x0-0x3f", "", "-", "0--1", "٠-٦٣",
    "99999999999999999999-99999999999999999999",
]


@pytest.mark.parametrize("content_range", CONTENT_RANGES)
def test_malformed_content_range(seeded, content_range):
    reg, _ = seeded
    loc = reg.start_upload("repo")
    resp = reg.patch(loc, data=BLOB, headers={"Content-Type": "application/octet-stream",
                                              "Content-Range": content_range})
    assert resp.status_code in (202, 400, 416), (content_range, resp.status_code)
    status = reg.get(loc if resp.status_code != 202 else path_of(resp.headers["Location"]))
    assert status.status_code == 204
    # whatever happened, the upload still completes correctly or stays consistent
    rng = status.headers["Range"]
    assert rng in ("0-0", "0--1", f"0-{len(BLOB) - 1}"), rng


@pytest.mark.parametrize("content_length", ["99999999999", "-1", "abc", "1e3", "65", "63", ""])
@pytest.mark.parametrize("where", ["patch", "put", "monolithic"])
def test_lying_content_length(seeded, content_length, where):
    reg, _ = seeded
    other = os.urandom(64)
    dig = digest_of(other)
    env = {"CONTENT_LENGTH": content_length}
    headers = {"Content-Type": "application/octet-stream"}
    if where == "monolithic":
        resp = reg.post(f"/v2/repo/blobs/uploads/?digest={dig}", data=other, headers=headers,
                        environ_overrides=env)
    else:
        loc = reg.start_upload("repo")
        if where == "patch":
            resp = reg.patch(loc, data=other, headers=headers, environ_overrides=env)
        else:
            resp = reg.put(f"{loc}{'&' if '?' in loc else '?'}digest={dig}", data=other,
                           headers=headers, environ_overrides=env)
    assert resp.status_code < 500
    if resp.status_code in (201,):
        # only a truthful length may commit, and only the right bytes
        assert reg.get(f"/v2/repo/blobs/{dig}").get_data() == other


@pytest.mark.parametrize("query", [
    "?n=-1", "?n=abc", "?n=", "?n=1&n=2", "?n=99999999999999999999999999", "?last=%00",
    "?last=" + "a" * 5000, "?n=1&last=", "?n=0x1", "?n=1e2",
])
@pytest.mark.parametrize("path", ["/v2/repo/tags/list", "/v2/_catalog"])
def test_malformed_pagination(seeded, query, path):
    reg, _ = seeded
    resp = reg.get(path + query)
    assert resp.status_code in (200, 400, 404), (path, query, resp.status_code)


@pytest.mark.parametrize("query", [
    "?artifactType=", "?artifactType=%00", "?artifactType=" + "a" * 5000,
    "?artifactType=a&artifactType=b&artifactType=c", "?n=-1", "?last=x",
])
def test_malformed_referrers_queries(seeded, query):
    reg, img = seeded
    resp = reg.get(f"/v2/repo/referrers/{img.digest}{query}")
    assert resp.status_code in (200, 400), resp.status_code


MANIFEST_BODIES = [
    b"", b" ", b"\x00" * 10, b"not json", b"[]", b"[{}]", b"null", b"true", b"1", b"\"x\"",
    b"{}", b"{\"mediaType\": 5}", b"{\"schemaVersion\": \"2\"}", b"{\"schemaVersion\": 2.5}",
    b"{\"schemaVersion\": 2, \"config\": [], \"layers\": []}",
    b"{\"schemaVersion\": 2, \"config\": null, \"layers\": null}",
    b"{\"schemaVersion\": 2, \"manifests\": null}",
    b"{\"schemaVersion\": 2, \"manifests\": [null]}",
    b"{\"schemaVersion\": 2, \"manifests\": [{\"digest\": 5}]}",
    b"{\"schemaVersion\": 2, \"layers\": [{\"digest\": \"sha256:" + b"a" * 64 + b"\", \"size\": 1e400}]}",
    b"{\"schemaVersion\": 2, \"layers\": [{\"digest\": \"sha256:" + b"a" * 64 + b"\", \"size\": NaN}]}",
    b"{\"schemaVersion\": 2, \"subject\": {\"digest\": \"../../etc\"}}",
    b"\xef\xbb\xbf{}",
    b"\xff\xfe{\x00}\x00",
    b"{\"a\": \"\\ud800\"}",
    b"[" * 200000,
    b"{\"k\":" * 200000,
]


@pytest.mark.parametrize("ctype", [OCI_MANIFEST, "application/vnd.oci.image.index.v1+json",
                                   "application/vnd.docker.distribution.manifest.v2+json",
                                   "application/vnd.docker.distribution.manifest.list.v2+json"])
@pytest.mark.parametrize("body", MANIFEST_BODIES, ids=range(len(MANIFEST_BODIES)))
def test_malformed_manifest_bodies(seeded, body, ctype):
    reg, _ = seeded
    for ref in ("v1", "v2", digest_of(body)):
        resp = reg.put_manifest("repo", ref, body, ctype)
        assert resp.status_code in (400, 404, 413, 415), (ref, resp.status_code)


@pytest.mark.parametrize("ctype", ["", "\x00", "application/vnd.oci.image.manifest.v1+json;;;",
                                   "application/vnd.oci.image.manifest.v1+json; x=\"unterminated",
                                   "*/*", "a" * 10000])
def test_malformed_content_types(seeded, ctype):
    reg, img = seeded
    resp = reg.put("/v2/repo/manifests/v1", data=img.raw, headers={"Content-Type": ctype})
    assert resp.status_code in (201, 400, 415)


@pytest.mark.parametrize("accept", ["", "garbage", "*/*", "application/json", "\x00",
                                    "text/html;q=abc", "a" * 10000])
def test_odd_accept_headers(seeded, accept):
    reg, img = seeded
    resp = reg.get("/v2/repo/manifests/v1", headers={"Accept": accept})
    assert resp.status_code in (200, 404, 406)
    if resp.status_code == 200:
        assert resp.get_data() == img.raw


def test_upload_sequence_abuse(seeded):
    reg, _ = seeded
    loc = reg.start_upload("repo")
    # PUT without digest, PUT with bad digest, PATCH after a failed PUT, double DELETE
    assert reg.put(loc, data=b"").status_code == 400
    assert reg.put(f"{loc}{'&' if '?' in loc else '?'}digest=nope", data=b"").status_code == 400
    r = reg.patch(loc, data=b"abc", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code in (202, 404)
    first = reg.delete(loc)
    assert first.status_code in (204, 404)
    assert reg.delete(loc).status_code == 404


def test_oversized_headers_and_paths(seeded):
    reg, _ = seeded
    long_ref = "a" * 20000
    assert 400 <= reg.get(f"/v2/repo/manifests/{long_ref}").status_code < 500
    assert 400 <= reg.get(f"/v2/{'a/' * 3000}a/tags/list").status_code < 500
    assert 400 <= reg.get(f"/v2/repo/blobs/uploads/{'b' * 20000}").status_code < 500
