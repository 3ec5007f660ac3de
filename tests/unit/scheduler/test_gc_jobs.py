"""GC through the scheduler's wiring: the metadata database follows every removal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from zotpy.config.loader import load_mapping
from zotpy.meta.db import close_if_open
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.registry import Registry
from zotpy.scheduler.jobs import collectors
from zotpy.scheduler.process import build_registry_with_hooks

LAYER = "application/vnd.oci.image.layer.v1.tar"


def push(registry: Registry, repo: str, tag: str, content: bytes) -> str:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}})
    descriptors = []
    for data, media_type in ((config.encode(), mt.OCI_CONFIG), (content, LAYER)):
        digest = registry.upload_monolithic(repo, str(Digest.of(data)), [data])
        descriptors.append({"mediaType": media_type, "digest": str(digest), "size": len(data)})
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": descriptors[0],
                      "layers": descriptors[1:]}).encode()
    return str(registry.put_manifest(repo, tag, raw, mt.OCI_MANIFEST).digest)


def test_collected_manifests_and_repositories_leave_the_metadata_database(tmp_path: Path) -> None:
    config = load_mapping({"storage": {"rootDirectory": str(tmp_path / "root"), "gcDelay": "1s"},
                           "extensions": {"search": {"enable": True}}})
    registry, indexes, meta, _ = build_registry_with_hooks(config)
    assert meta is not None
    try:
        kept = push(registry, "app", "v1", b"one")
        gone = push(registry, "app", "v2", b"two")
        lonely = push(registry, "lonely", "v1", b"three")
        registry.delete_manifest("app", "v2")
        registry.delete_manifest("lonely", lonely)
        assert {name for _, name, *_ in meta.tags()} == {"v1"}
        (_, _, collector), = collectors(config, registry, meta)
        collector.clock = lambda: time.time() + 3600
        reports = {r.repo: r for r in collector.run()}
        assert reports["app"].manifests == [gone] and reports["lonely"].repo_removed
        assert set(meta.repos().values()) == {"app"}
        assert {digest for (_, digest) in meta.stats()} == {kept}
        assert gone not in meta.known_images() and kept in meta.known_images()
    finally:
        for index in indexes:
            close_if_open(index.db)


def test_gc_command_prints_what_would_go_then_removes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zotpy.cli import main

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"storage": {"rootDirectory": str(tmp_path / "root"), "gcDelay": "1ms"}}))
    registry, indexes, _, _ = build_registry_with_hooks(load_mapping(json.loads(path.read_text())))
    try:
        push(registry, "app", "v1", b"one")
        gone = push(registry, "app", "v2", b"two")
        registry.delete_manifest("app", "v2")
    finally:
        for index in indexes:
            close_if_open(index.db)
    time.sleep(0.01)
    assert main(["gc", str(path), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert f"would remove manifest app@{gone}" in dry and "store /: 3 item(s) would be removed" in dry
    assert main(["gc", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"removed manifest app@{gone}" in out and "store /: 3 item(s) removed" in out
    assert main(["gc", str(path)]) == 0
    assert "store /: 0 item(s) removed" in capsys.readouterr().out
