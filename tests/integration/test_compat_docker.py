"""Docker v2 schema 2 manifests and manifest lists: accepted with ``compat: ["docker2s2"]``, 415 without."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.clients import ContainerTools
from helpers.env import require_tool
from helpers.layout import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCILayout, build_image, build_index
from helpers.registry_client import describe, error_codes, expect
from helpers.server import Server, require_zotpy, running_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def compat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("compat"), compat=["docker2s2"]) as server:
        yield server


def test_docker_manifest_and_list_with_compat(compat_server: Server) -> None:
    registry = compat_server.client()
    image = build_image(docker=True, n_layers=2)
    assert image.manifest.media_type == DOCKER_MANIFEST
    digest = registry.push_image("compat/docker", image, "v2s2")
    got = expect(registry.get_manifest("compat/docker", "v2s2"), 200)
    assert got.content == image.manifest.data
    assert got.headers["Content-Type"] == DOCKER_MANIFEST
    assert got.headers["Docker-Content-Digest"] == digest

    index = build_index(docker=True)
    registry.push_image("compat/docker", index, "list")
    got = expect(registry.get_manifest("compat/docker", "list"), 200)
    assert got.content == index.index.data
    assert got.headers["Content-Type"] == DOCKER_MANIFEST_LIST


def test_skopeo_copy_as_v2s2_with_compat(
    tmp_path: Path, tools: ContainerTools, compat_server: Server
) -> None:
    require_tool("skopeo")
    layout = OCILayout(tmp_path / "src").write({"v1": build_image(n_layers=1)})
    ref = f"docker://{compat_server.hostport}/compat/skopeo:v1"
    tools.skopeo_copy(f"oci:{layout.path}:v1", ref, "--format", "v2s2")
    head = expect(compat_server.client().head_manifest("compat/skopeo", "v1"), 200)
    assert head.headers["Content-Type"] == DOCKER_MANIFEST


def test_docker_manifest_refused_without_compat(live_server: Server, repo_name: str) -> None:
    require_zotpy(live_server, "refusing Docker manifests without compat")
    registry = live_server.client()
    image = build_image(docker=True, n_layers=1)
    for blob in image.blobs:
        registry.push_blob(repo_name, blob)
    resp = registry.put_manifest(repo_name, "v1", image.manifest.data, image.manifest.media_type)
    assert resp.status_code == 415, describe(resp)
    assert error_codes(resp), describe(resp)
    index = build_index(docker=True)
    resp = registry.put_manifest(repo_name, "list", index.index.data, index.index.media_type)
    assert resp.status_code == 415, describe(resp)
    assert registry.get_manifest(repo_name, "v1").status_code == 404
