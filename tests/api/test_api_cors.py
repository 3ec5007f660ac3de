"""Cross-origin headers and OPTIONS preflights (zot's ``http.allowOrigin``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oci_api_client import Registry
from zotpy.app import create_app, prepare
from zotpy.config.model import Config, GlobalStorageConfig, HTTPConfig


def _registry(tmp_path: Path, allow_origin: str | None) -> Registry:
    root = tmp_path / "root"
    root.mkdir()
    cfg = Config(storage=GlobalStorageConfig(root_directory=str(root), gc=False),
                 http=HTTPConfig(allow_origin=allow_origin))
    prepare(cfg)
    app = create_app(cfg)
    app.testing = True
    return Registry(app, root, forbidden=[str(tmp_path)])


@pytest.mark.parametrize(("path", "methods"), [
    ("/v2/", "GET,HEAD,OPTIONS"),
    ("/v2/_catalog", "GET,OPTIONS"),
    ("/v2/_oci/ext/discover", "GET,OPTIONS"),
    ("/v2/a/b/manifests/latest", "GET,HEAD,PUT,DELETE,OPTIONS"),
    ("/v2/a/blobs/uploads/", "POST,OPTIONS"),
    ("/v2/a/tags/list", "GET,OPTIONS"),
    ("/v2/a/referrers/sha256:" + "0" * 64, "GET,OPTIONS"),
])
def test_preflight_lists_the_route_methods(tmp_path: Path, path: str, methods: str) -> None:
    reg = _registry(tmp_path, None)
    resp = reg.request("OPTIONS", path)
    assert resp.status_code == 200
    assert resp.data == b""
    assert resp.headers["Access-Control-Allow-Methods"] == methods
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-ZOT-API-CLIENT" in resp.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in resp.headers


def test_preflight_of_an_unknown_route_is_not_found(tmp_path: Path) -> None:
    reg = _registry(tmp_path, None)
    assert reg.request("OPTIONS", "/v2/a/nothing/here").status_code == 404


def test_an_explicit_origin_is_named_and_allows_credentials(tmp_path: Path) -> None:
    reg = _registry(tmp_path, "https://ui.example.com")
    for resp in (reg.get("/v2/"), reg.get("/v2/missing/tags/list"), reg.request("OPTIONS", "/v2/")):
        assert resp.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    assert reg.get("/v2/missing/tags/list").status_code == 404
