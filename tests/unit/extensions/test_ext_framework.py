"""Tests for the extension framework, the mgmt extension and the wiring in create_app."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from zotpy import extensions
from zotpy.app import create_app, prepare
from zotpy.config import load_mapping
from zotpy.config.model import Config
from zotpy.extensions import mgmt, search


def config(tmp_path: Path, **sections: Any) -> Config:
    return load_mapping({"storage": {"rootDirectory": str(tmp_path / "root")}, **sections})


@pytest.mark.parametrize(("section", "enabled"), [
    (None, False), ({}, True), ({"enable": True}, True), ({"enable": False}, False),
])
def test_search_and_mgmt_follow_the_search_section(tmp_path: Path, section: Any, enabled: bool) -> None:
    cfg = config(tmp_path, **({} if section is None else {"extensions": {"search": section}}))
    assert search.is_enabled(cfg) is enabled
    assert mgmt.is_enabled(cfg) is enabled
    assert extensions.needs_metadata(cfg) is enabled
    expected = ["/v2/_zot/ext/search", "/v2/_zot/ext/mgmt", "/v2/_zot/ext/userprefs"] if enabled else []
    assert extensions.discover_endpoints(cfg) == expected


def test_the_mgmt_section_alone_enables_nothing(tmp_path: Path) -> None:
    cfg = config(tmp_path, extensions={"mgmt": {"enable": True}})
    assert extensions.enabled(cfg) == []


def test_the_minimal_setup_registers_no_hooks_and_creates_no_metadata_tables(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    prepare(cfg)
    app = create_app(cfg)
    assert app.extensions["zotpy.registry"].hooks == []
    client = app.test_client()
    assert client.get("/v2/_zot/ext/search?query={ImageList(repo:\"\"){Page{TotalCount}}}").status_code == 404
    assert client.get("/v2/_oci/ext/discover").get_json()["extensions"][0]["endpoints"] == []
    with sqlite3.connect(tmp_path / "root" / "_zotpy" / "zotpy.db") as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
    assert not any(name.startswith("meta_") for name in tables), tables


def test_search_wires_hooks_routes_and_discover(tmp_path: Path) -> None:
    cfg = config(tmp_path, extensions={"search": {}})
    prepare(cfg)
    app = create_app(cfg)
    assert len(app.extensions["zotpy.registry"].hooks) == 1
    client = app.test_client()
    endpoints = client.get("/v2/_oci/ext/discover").get_json()["extensions"][0]["endpoints"]
    assert endpoints == ["/v2/_zot/ext/search", "/v2/_zot/ext/mgmt", "/v2/_zot/ext/userprefs"]
    query = '{ ImageList(repo: "") { Page { TotalCount } } }'
    answer = client.post("/v2/_zot/ext/search", json={"query": query})
    assert answer.status_code == 200
    assert answer.get_json() == {"data": {"ImageList": {"Page": {"TotalCount": 0}}}}


def test_mgmt_serves_the_stripped_configuration(tmp_path: Path) -> None:
    cfg = config(tmp_path, extensions={"search": {}})
    prepare(cfg)
    body = create_app(cfg).test_client().get("/v2/_zot/ext/mgmt").get_json()
    assert body["distSpecVersion"] == cfg.dist_spec_version
    assert body["binaryType"] == "-mgmt-search-userprefs"
    assert body["http"] == {"auth": {}}
    assert set(body) == {"distSpecVersion", "commit", "releaseTag", "binaryType", "http"}


@pytest.mark.parametrize(("auth", "expected"), [
    ({"htpasswd": {"path": "/x"}}, {"htpasswd": {}}),
    ({"ldap": {"address": "ldap"}}, {"htpasswd": {}}),
    ({"bearer": {"realm": "https://auth/token", "service": "reg", "cert": "/c"}},
     {"bearer": {"realm": "https://auth/token", "service": "reg"}}),
    ({"openid": {"providers": {"github": {"clientid": "id", "clientsecret": "s"}, "oidc": {"name": "Corp"}}}},
     {"openid": {"providers": {"github": {"name": "github"}, "oidc": {"name": "Corp"}}}}),
    ({"apikey": True, "htpasswd": {"path": "/x"}}, {"htpasswd": {}, "apikey": True}),
])
def test_mgmt_names_auth_methods_without_secrets(tmp_path: Path, auth: dict[str, Any],
                                                 expected: dict[str, Any]) -> None:
    base = config(tmp_path)
    cfg = Config(storage=base.storage, http=type(base.http)(auth=auth))
    assert mgmt.stripped_config(cfg, ("search",))["http"]["auth"] == expected
