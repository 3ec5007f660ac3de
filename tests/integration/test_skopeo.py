"""skopeo round trips: OCI layout → registry → OCI layout, with identical digests and bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.clients import ContainerTools
from helpers.env import require_tool
from helpers.layout import OCI_INDEX, OCI_MANIFEST, Image, Index, OCILayout, build_image, build_index
from helpers.registry_client import RegistryClient, expect
from helpers.server import Server

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _skopeo() -> None:
    require_tool("skopeo")


def assert_same_content(source: OCILayout, copy: OCILayout, tag: str, item: Image | Index) -> None:
    """The copy has the tag on the same manifest digest and every blob byte for byte."""
    assert copy.tags()[tag]["digest"] == item.digest
    for blob in (*item.blobs, item.manifest):
        assert copy.read_blob(blob.digest) == blob.data, blob.digest
    assert source.blob_digests() <= copy.blob_digests()


def test_copy_single_image_round_trip(
    tmp_path: Path, tools: ContainerTools, live_server: Server, registry: RegistryClient, repo_name: str
) -> None:
    image = build_image(
        n_layers=3, labels={"org.example.test": "skopeo"}, annotations={"purpose": "round-trip"}
    )
    source = OCILayout(tmp_path / "src").write({"v1": image})
    ref = f"docker://{live_server.hostport}/{repo_name}:v1"

    digestfile = tmp_path / "pushed.digest"
    tools.skopeo_copy(f"oci:{source.path}:v1", ref, "--digestfile", str(digestfile))
    assert digestfile.read_text().strip() == image.digest

    resp = expect(registry.get_manifest(repo_name, "v1"), 200)
    assert resp.content == image.manifest.data
    assert resp.headers["Docker-Content-Digest"] == image.digest
    assert resp.headers["Content-Type"] == OCI_MANIFEST
    assert tools.skopeo_inspect_raw(ref) == image.manifest.data

    copy = OCILayout(tmp_path / "back")
    tools.skopeo_copy(ref, f"oci:{copy.path}:v1")
    assert_same_content(source, copy, "v1", image)


def test_copy_multi_platform_index_round_trip(
    tmp_path: Path, tools: ContainerTools, live_server: Server, registry: RegistryClient, repo_name: str
) -> None:
    index = build_index(annotations={"org.opencontainers.image.description": "three platforms"})
    source = OCILayout(tmp_path / "src").write({"multi": index})
    ref = f"docker://{live_server.hostport}/{repo_name}:multi"

    tools.skopeo_copy(f"oci:{source.path}:multi", ref, "--all")

    resp = expect(registry.get_manifest(repo_name, "multi"), 200)
    assert resp.content == index.index.data
    assert resp.headers["Content-Type"] == OCI_INDEX
    assert resp.headers["Docker-Content-Digest"] == index.digest
    for image in index.images:
        child = expect(registry.get_manifest(repo_name, image.digest), 200)
        assert child.content == image.manifest.data
    assert tools.skopeo_inspect_raw(ref) == index.index.data

    copy = OCILayout(tmp_path / "back")
    tools.skopeo_copy(ref, f"oci:{copy.path}:multi", "--all")
    assert_same_content(source, copy, "multi", index)


def test_copy_between_repositories_keeps_digest(
    tmp_path: Path, tools: ContainerTools, live_server: Server, registry: RegistryClient, repo_name: str
) -> None:
    """registry → registry (same server, other name): the manifest digest is preserved."""
    image = build_image(n_layers=1)
    source = OCILayout(tmp_path / "src").write({"a": image})
    tools.skopeo_copy(f"oci:{source.path}:a", f"docker://{live_server.hostport}/{repo_name}:a")
    tools.skopeo_copy(
        f"docker://{live_server.hostport}/{repo_name}:a",
        f"docker://{live_server.hostport}/{repo_name}/copy:b",
        "--preserve-digests",
    )
    head = expect(registry.head_manifest(f"{repo_name}/copy", "b"), 200)
    assert head.headers["Docker-Content-Digest"] == image.digest
    assert head.content == b""
