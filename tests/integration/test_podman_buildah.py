"""podman push/pull and buildah push against the live registry, without running any container."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.clients import ContainerTools
from helpers.env import require_tool
from helpers.layout import OCILayout, build_image, make_layer
from helpers.registry_client import RegistryClient, expect
from helpers.server import Server

pytestmark = pytest.mark.integration


def test_podman_push_and_pull(
    tmp_path: Path, tools: ContainerTools, live_server: Server, registry: RegistryClient, repo_name: str
) -> None:
    require_tool("podman")
    require_tool("skopeo")
    image = build_image(layers=[make_layer({"etc/hello": b"hello from podman\n"})], labels={"tool": "podman"})
    layout = OCILayout(tmp_path / "layout").write({"v1": image})
    local = "localhost/zotpy-test/podman:v1"
    tools.load_layout(layout.path, "v1", local)
    image_id = tools.podman_image_id(local)
    assert image_id == image.config.digest.split(":", 1)[1], "podman's image id is the config digest"

    remote = f"{live_server.hostport}/{repo_name}:v1"
    digestfile = tmp_path / "pushed.digest"
    tools.podman_push(local, f"docker://{remote}", digestfile)
    pushed = digestfile.read_text().strip()

    head = expect(registry.head_manifest(repo_name, "v1"), 200)
    assert head.headers["Docker-Content-Digest"] == pushed
    manifest = expect(registry.get_manifest(repo_name, pushed), 200).json()
    assert manifest["config"]["digest"] == image.config.digest
    assert expect(registry.get_blob(repo_name, image.config.digest), 200).content == image.config.data

    tools.podman("rmi", "--force", local)
    pulled_id = tools.podman_pull(remote)
    assert pulled_id == image_id
    assert tools.podman_image_id(remote) == image_id
    digests = json.loads(tools.podman("image", "inspect", remote).stdout)[0]["RepoDigests"]
    assert any(d.endswith(f"@{pushed}") for d in digests), digests


def test_buildah_push_from_scratch(
    tmp_path: Path, tools: ContainerTools, live_server: Server, registry: RegistryClient, repo_name: str
) -> None:
    require_tool("buildah")
    require_tool("skopeo")
    payload = tmp_path / "payload.txt"
    payload.write_bytes(b"built by buildah from scratch\n" * 100)

    container = (
        tools.buildah("from", "--signature-policy", str(tools.policy), "scratch")
        .stdout.strip()
        .splitlines()[-1]
    )
    try:
        tools.buildah("copy", container, str(payload), "/payload.txt")
        tools.buildah("config", "--label", "org.example.built-by=buildah", "--cmd", "/payload.txt", container)
        tools.buildah(
            "commit",
            "--signature-policy",
            str(tools.policy),
            "--format",
            "oci",
            container,
            "localhost/scratch:v1",
        )
    finally:
        tools.buildah("rm", container)

    digestfile = tmp_path / "pushed.digest"
    tools.buildah(
        "push",
        "--signature-policy",
        str(tools.policy),
        "--tls-verify=false",
        "--digestfile",
        str(digestfile),
        "localhost/scratch:v1",
        f"docker://{live_server.hostport}/{repo_name}:v1",
    )
    pushed = digestfile.read_text().strip()
    resp = expect(registry.get_manifest(repo_name, "v1"), 200)
    assert resp.headers["Docker-Content-Digest"] == pushed

    back = OCILayout(tmp_path / "back")
    tools.skopeo_copy(f"docker://{live_server.hostport}/{repo_name}:v1", f"oci:{back.path}:v1")
    assert back.tags()["v1"]["digest"] == pushed
    manifest = json.loads(back.read_blob(pushed))
    config = json.loads(back.read_blob(manifest["config"]["digest"]))
    assert config["config"]["Labels"]["org.example.built-by"] == "buildah"
    assert len(manifest["layers"]) == 1
