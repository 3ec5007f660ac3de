"""The metadata database as the app wires it: hooks that undo storage, rebuilds from disk, sub-paths."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from zotpy.app import create_app, prepare
from zotpy.config import load_mapping
from zotpy.config.model import Config
from zotpy.meta.store import MetaStore

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
QUERY = '{ ImageList(repo: "") { Page { TotalCount } Results { RepoName Tag Digest DownloadCount } } }'


def config(root: Path, **storage: Any) -> Config:
    return load_mapping({"storage": {"rootDirectory": str(root), "gc": False, **storage},
                         "extensions": {"search": {}}})


def client(cfg: Config) -> FlaskClient:
    prepare(cfg)
    return create_app(cfg).test_client()


def push(c: FlaskClient, repo: str, tag: str, seed: str, status: int = 201) -> str:
    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = c.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", data=data,
                   headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.get_data()
        return {"digest": digest, "size": len(data)}

    config_blob = json.dumps({"os": "linux", "architecture": "amd64", "seed": seed}).encode()
    config_type = "application/vnd.oci.image.config.v1+json"
    body = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                       "config": {"mediaType": config_type, **blob(config_blob)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   **blob(seed.encode())}]}).encode()
    r = c.put(f"/v2/{repo}/manifests/{tag}", data=body, headers={"Content-Type": MANIFEST})
    assert r.status_code == status, r.get_data()
    return str(r.headers.get("Docker-Content-Digest"))


def images(c: FlaskClient) -> dict[tuple[str, str], dict[str, Any]]:
    answer = c.post("/v2/_zot/ext/search", json={"query": QUERY}).get_json()
    return {(i["RepoName"], i["Tag"]): i for i in answer["data"]["ImageList"]["Results"]}


def test_a_failing_database_write_undoes_the_push(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = client(config(tmp_path / "root"))
    push(c, "app", "1.0", "kept")

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(MetaStore, "record_put", broken)
    push(c, "app", "2.0", "lost", status=500)
    monkeypatch.undo()
    assert c.get("/v2/app/manifests/2.0").status_code == 404, "storage was put back"
    assert c.get("/v2/app/tags/list").get_json()["tags"] == ["1.0"]
    assert set(images(c)) == {("app", "1.0")}


def test_a_failing_delete_keeps_the_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = client(config(tmp_path / "root"))
    push(c, "app", "1.0", "kept")

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("database locked")

    monkeypatch.setattr(MetaStore, "record_delete", broken)
    assert c.delete("/v2/app/manifests/1.0").status_code == 500
    monkeypatch.undo()
    assert c.get("/v2/app/manifests/1.0").status_code == 200
    assert set(images(c)) == {("app", "1.0")}


def test_pulls_are_counted_and_heads_are_not(tmp_path: Path) -> None:
    c = client(config(tmp_path / "root"))
    push(c, "app", "1.0", "a")
    for _ in range(3):
        assert c.get("/v2/app/manifests/1.0").status_code == 200
        assert c.head("/v2/app/manifests/1.0").status_code == 200
    assert images(c)[("app", "1.0")]["DownloadCount"] == 3


def test_a_root_written_while_stopped_is_found_and_a_restart_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    plain = load_mapping({"storage": {"rootDirectory": str(root), "gc": False}})
    c = client(plain)  # no search: nothing is indexed
    first = push(c, "team/app", "1.0", "a")
    push(c, "lib", "2.0", "b")
    searching = client(config(root))
    assert {k: v["Digest"] for k, v in images(searching).items() if k[0] == "team/app"} == {
        ("team/app", "1.0"): first}
    assert len(images(searching)) == 2
    for _ in range(2):
        searching.get("/v2/lib/manifests/2.0")
    before = images(searching)
    started = time.monotonic()
    again = client(config(root))
    assert time.monotonic() - started < 3
    assert images(again) == before


def test_deletes_while_running_are_seen_at_once_and_after_a_rebuild(tmp_path: Path) -> None:
    root = tmp_path / "root"
    c = client(config(root))
    digest = push(c, "app", "1.0", "a")
    push(c, "app", "2.0", "b")
    assert c.delete("/v2/app/manifests/2.0").status_code == 202
    assert set(images(c)) == {("app", "1.0")}
    assert c.delete(f"/v2/app/manifests/{digest}").status_code == 202
    assert images(c) == {}
    (root / "_zotpy" / "zotpy.db").unlink()
    for extra in ("-wal", "-shm"):
        (root / "_zotpy" / f"zotpy.db{extra}").unlink(missing_ok=True)
    assert images(client(config(root))) == {}


def test_sub_path_stores_are_indexed_in_the_default_database(tmp_path: Path) -> None:
    cfg = config(tmp_path / "root", subPaths={"/team": {"rootDirectory": str(tmp_path / "team")}})
    c = client(cfg)
    push(c, "team/app", "1.0", "a")
    push(c, "other", "1.0", "b")
    assert set(images(c)) == {("team/app", "1.0"), ("other", "1.0")}
    assert set(images(client(cfg))) == {("team/app", "1.0"), ("other", "1.0")}
