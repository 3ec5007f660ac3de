"""Version check, health endpoints, extension discovery and routing of unknown paths."""

from __future__ import annotations

import json

import pytest

from oci_api_client import assert_error


def test_version_check(reg):
    resp = reg.get("/v2/")
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_version_check_head(reg):
    resp = reg.head("/v2/")
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert resp.get_data() == b""


def test_version_check_without_trailing_slash_is_not_an_error(reg):
    resp = reg.get("/v2", follow_redirects=True)
    assert resp.status_code == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/startupz"])
def test_health(reg, path):
    assert reg.get(path).status_code == 200


def test_discover(reg):
    resp = reg.get("/v2/_oci/ext/discover")
    assert resp.status_code == 200
    doc = json.loads(resp.get_data())
    assert isinstance(doc, dict)


UNKNOWN_PATHS = [
    "/v2/foo/bar/baz",
    "/v2/foo/unknown",
    "/v2/foo/blobs",
    "/v2/foo/blobs/",
    "/v2/foo/manifests/",
    "/v2/foo/manifests",
    "/v2/foo/tags",
    "/v2/foo/tags/list/extra",
    "/v2/foo/referrers/",
    "/v2/_catalogue",
    "/v2/_oci/ext/unknown",
    "/v2/foo/blobs/uploads/x/y",
]


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
@pytest.mark.parametrize("method", ["GET", "PUT", "POST", "PATCH", "DELETE"])
def test_unknown_paths_answer_oci_errors(reg, path, method):
    resp = reg.request(method, path, data=b"")
    assert resp.status_code >= 400, (method, path, resp.status_code)
    # the wrapper checks the body is an OCI error envelope, never HTML


WRONG_METHODS = [
    ("POST", "/v2/repo/manifests/latest"),
    ("PATCH", "/v2/repo/manifests/latest"),
    ("POST", "/v2/repo/blobs/sha256:" + "a" * 64),
    ("PUT", "/v2/repo/blobs/sha256:" + "a" * 64),
    ("PATCH", "/v2/repo/blobs/sha256:" + "a" * 64),
    ("PUT", "/v2/repo/tags/list"),
    ("DELETE", "/v2/repo/tags/list"),
    ("POST", "/v2/repo/tags/list"),
    ("DELETE", "/v2/_catalog"),
    ("POST", "/v2/_catalog"),
    ("PUT", "/v2/"),
    ("DELETE", "/v2/"),
    ("PATCH", "/v2/"),
    ("POST", "/v2/repo/referrers/sha256:" + "a" * 64),
    ("DELETE", "/v2/repo/referrers/sha256:" + "a" * 64),
    ("PUT", "/v2/repo/blobs/uploads/"),
    ("PATCH", "/v2/repo/blobs/uploads/"),
    ("DELETE", "/v2/repo/blobs/uploads/"),
]


@pytest.mark.parametrize("method,path", WRONG_METHODS)
def test_wrong_methods(reg, method, path):
    resp = reg.request(method, path, data=b"")
    assert resp.status_code in (400, 404, 405), (method, path, resp.status_code)


def test_error_envelope_shape(reg):
    resp = reg.get("/v2/nosuchrepo/manifests/latest")
    assert_error(resp, 404, "NAME_UNKNOWN")
    assert resp.headers["Content-Type"].startswith("application/json")
    err = resp.get_json()["errors"][0]
    assert set(err) <= {"code", "message", "detail"}
