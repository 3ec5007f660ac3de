"""What the API leaves on disk: OCI layouts, atomicity, dedupe, sub-path stores, and
layouts dropped into the root before startup."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from oci_api_client import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    blob_files,
    descriptor,
    digest_of,
    path_of,
    with_query,
)
from zotpy.config.model import StorageConfig

OCTET = {"Content-Type": "application/octet-stream"}


def _blob_path(repo_dir: Path, digest: str) -> Path:
    alg, hexpart = digest.split(":")
    return repo_dir / "blobs" / alg / hexpart


def test_repository_is_an_oci_layout(reg):
    img = reg.push_image("repo", "v1")
    reg.put_manifest("repo", "v2", img.raw)
    untagged = reg.push_image("repo", by_digest=True)
    repo = reg.root / "repo"
    assert json.loads((repo / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((repo / "index.json").read_text())
    assert index["schemaVersion"] == 2
    tagged = {m["annotations"]["org.opencontainers.image.ref.name"]: m
              for m in index["manifests"] if "org.opencontainers.image.ref.name" in m.get("annotations", {})}
    assert set(tagged) == {"v1", "v2"}
    for entry in tagged.values():
        assert entry["digest"] == img.digest
        assert entry["mediaType"] == OCI_MANIFEST
        assert entry["size"] == len(img.raw)
    assert untagged.digest in {m["digest"] for m in index["manifests"]}
    assert _blob_path(repo, img.digest).read_bytes() == img.raw
    for blob in img.blobs:
        assert _blob_path(repo, digest_of(blob)).read_bytes() == blob
    for f in blob_files(repo):
        data = f.read_bytes()
        assert hashlib.new(f.parent.name, data).hexdigest() == f.name, f


def test_index_json_after_deletes(reg):
    img = reg.push_image("repo", "v1")
    reg.put_manifest("repo", "v2", img.raw)
    reg.delete("/v2/repo/manifests/v1")
    index = json.loads((reg.root / "repo" / "index.json").read_text())
    names = [m.get("annotations", {}).get("org.opencontainers.image.ref.name") for m in index["manifests"]]
    assert "v1" not in names and "v2" in names
    reg.delete(f"/v2/repo/manifests/{img.digest}")
    index = json.loads((reg.root / "repo" / "index.json").read_text())
    assert img.digest not in {m["digest"] for m in index["manifests"]}


def test_nested_repository_layout(reg):
    reg.push_image("a/b/c", "v1")
    assert (reg.root / "a" / "b" / "c" / "index.json").is_file()
    assert (reg.root / "a" / "b" / "c" / "oci-layout").is_file()


def test_no_temp_files_after_failed_uploads(reg):
    good = reg.push_blob("repo", b"good")
    assert good.status_code == 201
    data = os.urandom(500)
    wrong = digest_of(b"not it")
    assert reg.post(f"/v2/repo/blobs/uploads/?digest={wrong}", data=data, headers=OCTET).status_code == 400
    loc = reg.start_upload("repo")
    r = reg.patch_chunk(loc, data, 0)
    assert reg.put(with_query(path_of(r.headers["Location"]), digest=wrong), data=b"",
                   headers=OCTET).status_code == 400
    # an abandoned upload and a cancelled one leave nothing under blobs/ either
    loc2 = reg.start_upload("repo")
    reg.patch_chunk(loc2, data, 0)
    loc3 = reg.start_upload("repo")
    reg.patch_chunk(loc3, data, 0)
    assert reg.delete(loc3).status_code == 204
    files = blob_files(reg.root / "repo")
    assert [f.name for f in files] == [digest_of(b"good").split(":")[1]]


def test_failed_manifest_put_leaves_nothing(reg):
    img = reg.image_manifest("repo")
    before = {f.name for f in blob_files(reg.root / "repo")}
    assert reg.put_manifest("repo", digest_of(b"x"), img.raw).status_code == 400
    assert reg.put_manifest("repo", "v1", img.raw, OCI_INDEX).status_code == 400
    assert {f.name for f in blob_files(reg.root / "repo")} == before
    index_path = reg.root / "repo" / "index.json"
    if index_path.exists():
        assert json.loads(index_path.read_text()).get("manifests", []) == []


@pytest.mark.parametrize("style", ["monolithic", "chunked", "mount"])
def test_dedupe_hard_links(make_registry, style):
    reg = make_registry(dedupe=True)
    data = os.urandom(4096)
    dig = digest_of(data)
    reg.push_blob("one", data)
    if style == "mount":
        assert reg.post(f"/v2/two/blobs/uploads/?mount={dig}&from=one").status_code == 201
    else:
        reg.push_blob("two", data, style)
    a, b = _blob_path(reg.root / "one", dig), _blob_path(reg.root / "two", dig)
    assert a.stat().st_ino == b.stat().st_ino
    assert reg.delete(f"/v2/one/blobs/{dig}").status_code == 202
    assert not a.exists()
    assert b.read_bytes() == data
    assert reg.get(f"/v2/two/blobs/{dig}").get_data() == data


def test_no_dedupe_separate_copies(make_registry):
    reg = make_registry(dedupe=False)
    data = os.urandom(4096)
    dig = digest_of(data)
    reg.push_blob("one", data)
    reg.push_blob("two", data)
    a, b = _blob_path(reg.root / "one", dig), _blob_path(reg.root / "two", dig)
    assert a.stat().st_ino != b.stat().st_ino
    assert reg.delete(f"/v2/two/blobs/{dig}").status_code == 202
    assert reg.get(f"/v2/one/blobs/{dig}").get_data() == data


def test_dedupe_many_repos_one_inode(make_registry):
    reg = make_registry(dedupe=True)
    data = os.urandom(2048)
    dig = digest_of(data)
    for i in range(6):
        reg.push_blob(f"r{i}", data, "chunked" if i % 2 else "monolithic")
    inodes = {_blob_path(reg.root / f"r{i}", dig).stat().st_ino for i in range(6)}
    assert len(inodes) == 1
    for i in range(5):
        assert reg.delete(f"/v2/r{i}/blobs/{dig}").status_code == 202
    assert reg.get(f"/v2/r5/blobs/{dig}").get_data() == data


def test_dedupe_after_original_deleted(make_registry):
    """The dedupe index must not point a new push at a deleted copy."""
    reg = make_registry(dedupe=True)
    data = os.urandom(1024)
    dig = digest_of(data)
    reg.push_blob("one", data)
    assert reg.delete(f"/v2/one/blobs/{dig}").status_code == 202
    reg.push_blob("two", data)
    assert reg.get(f"/v2/two/blobs/{dig}").get_data() == data
    assert reg.get(f"/v2/one/blobs/{dig}").status_code == 404


def test_sub_path_store(make_registry, tmp_path):
    sub_root = tmp_path / "sub"
    reg = make_registry(sub_paths={"sp": StorageConfig(root_directory=str(sub_root))})
    img = reg.push_image("sp/app", "v1")
    reg.push_image("main/app", "v1")
    assert not (reg.root / "sp").exists()
    layouts = [p.parent for p in sub_root.rglob("index.json") if (p.parent / "oci-layout").exists()]
    assert len(layouts) == 1 and layouts[0].name == "app"
    assert _blob_path(layouts[0], img.digest).read_bytes() == img.raw
    assert (reg.root / "main" / "app" / "index.json").is_file()
    assert not any(p.name == "index.json" and "main" in p.parts for p in sub_root.rglob("*"))
    got = reg.get("/v2/sp/app/manifests/v1")
    assert got.status_code == 200 and got.get_data() == img.raw


def test_sub_path_prefix_is_a_whole_component(make_registry, tmp_path):
    sub_root = tmp_path / "sub"
    reg = make_registry(sub_paths={"sp": StorageConfig(root_directory=str(sub_root))})
    reg.push_image("spx/app", "v1")  # "spx" is not "sp"
    assert (reg.root / "spx" / "app" / "index.json").is_file()


def test_sub_path_mount_across_stores(make_registry, tmp_path):
    reg = make_registry(sub_paths={"sp": StorageConfig(root_directory=str(tmp_path / "sub"))})
    data = os.urandom(100)
    dig = digest_of(data)
    reg.push_blob("main", data)
    resp = reg.post(f"/v2/sp/x/blobs/uploads/?mount={dig}&from=main")
    assert resp.status_code in (201, 202)
    if resp.status_code == 201:
        assert reg.get(f"/v2/sp/x/blobs/{dig}").get_data() == data


def _write_layout(repo_dir: Path, tag: str) -> tuple[bytes, bytes, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = os.urandom(300)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": descriptor(OCI_CONFIG, config),
                           "layers": [descriptor(OCI_LAYER, layer)]}, indent=2).encode()
    for blob in (config, layer, manifest):
        p = _blob_path(repo_dir, digest_of(blob))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blob)
    (repo_dir / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (repo_dir / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest_of(manifest),
                       "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return config, layer, manifest


def test_layout_dropped_into_root_is_served(make_registry):
    written = {}

    def drop(root: Path) -> None:
        written["pre/app"] = _write_layout(root / "pre" / "app", "v1")
        written["plain"] = _write_layout(root / "plain", "latest")

    reg = make_registry(before_prepare=drop)
    config, layer, manifest = written["pre/app"]
    assert reg.tags("pre/app") == ["v1"]
    resp = reg.get("/v2/pre/app/manifests/v1")
    assert resp.status_code == 200 and resp.get_data() == manifest
    assert resp.headers["Docker-Content-Digest"] == digest_of(manifest)
    assert reg.get(f"/v2/pre/app/manifests/{digest_of(manifest)}").get_data() == manifest
    assert reg.get(f"/v2/pre/app/blobs/{digest_of(layer)}").get_data() == layer
    assert reg.tags("plain") == ["latest"]
    catalog = reg.catalog()
    assert "pre/app" in catalog and "plain" in catalog
    assert all(not name.startswith("_") for name in catalog), catalog
    # and it is a normal repository afterwards
    img = reg.push_image("pre/app", "v2")
    assert reg.tags("pre/app") == ["v1", "v2"]
    assert reg.get("/v2/pre/app/manifests/v2").get_data() == img.raw


def test_layout_dropped_blob_delete_protection(make_registry):
    written = {}
    reg = make_registry(before_prepare=lambda root: written.setdefault(
        "x", _write_layout(root / "dropped", "v1")))
    _, layer, _ = written["x"]
    assert reg.delete(f"/v2/dropped/blobs/{digest_of(layer)}").status_code == 405


def test_catalog_ignores_non_layout_directories(make_registry):
    def drop(root: Path) -> None:
        (root / "junk" / "dir").mkdir(parents=True)
        (root / "junk" / "file.txt").write_text("x")
        (root / "half").mkdir()
        (root / "half" / "index.json").write_text("{not json")

    reg = make_registry(before_prepare=drop)
    resp = reg.get("/v2/_catalog")
    assert resp.status_code == 200
    names = resp.get_json().get("repositories") or []
    assert "junk" not in names and "junk/dir" not in names
    for path in ("/v2/half/tags/list", "/v2/half/manifests/v1", "/v2/junk/tags/list"):
        assert reg.get(path).status_code in (200, 404)


def test_private_directory_is_not_a_repository(reg):
    reg.push_image("repo", "v1")
    for entry in reg.root.iterdir():
        if entry.name.startswith("_") or entry.name.startswith("."):
            assert entry.name not in reg.catalog()
    for name in ("cache.db", "meta.db"):
        assert not any(p.name == name for p in reg.root.rglob("*")), name
