"""Real clients against a registry with htpasswd and API keys: podman and skopeo log in, push and pull."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from helpers.auth_policy import USERS
from helpers.clients import ContainerTools, ToolError
from helpers.env import require_tool
from helpers.layout import OCILayout, build_image, make_layer
from helpers.server import LiveServer

pytestmark = pytest.mark.integration


def _local_image(tmp_path: Path, tools: ContainerTools, text: str) -> tuple[str, str]:
    image = build_image(layers=[make_layer({"etc/msg": text.encode()})])
    layout = OCILayout(tmp_path / f"layout-{uuid.uuid4().hex[:6]}").write({"v1": image})
    local = f"localhost/zotpy-auth/{uuid.uuid4().hex[:8]}:v1"
    tools.load_layout(layout.path, "v1", local)
    return local, image.config.digest.split(":", 1)[1]


def test_podman_login_push_pull(tmp_path: Path, tools: ContainerTools, auth_server: LiveServer) -> None:
    require_tool("podman")
    host = auth_server.hostport
    bad = tools.run([require_tool("podman"), "login", "--tls-verify=false", "-u", "eve", "-p", "wrong", host],
                    check=False)
    assert bad.returncode != 0
    assert "invalid username/password" in bad.stderr or "401" in bad.stderr, bad.stderr
    tools.podman("login", "--tls-verify=false", "-u", "eve", "-p", USERS["eve"], host)
    local, image_id = _local_image(tmp_path, tools, "pushed by eve")
    remote = f"{host}/team/podman-{uuid.uuid4().hex[:6]}:v1"
    tools.podman_push(local, f"docker://{remote}")
    tools.podman("rmi", "--force", local)
    assert tools.podman_pull(remote) == image_id
    # eve may not push where her policy does not allow it
    with pytest.raises(ToolError) as refused:
        tools.podman_push(remote, f"docker://{host}/prod/podman:v1")
    assert "denied" in str(refused.value).lower() or "403" in str(refused.value)
    tools.podman("logout", host)
    with pytest.raises(ToolError):
        tools.podman_pull(remote)  # team/** is not readable anonymously


def test_skopeo_login_and_creds(tmp_path: Path, tools: ContainerTools, auth_server: LiveServer) -> None:
    require_tool("skopeo")
    host = auth_server.hostport
    image = build_image(layers=[make_layer({"etc/msg": b"skopeo"})])
    layout = OCILayout(tmp_path / "layout").write({"v1": image})
    repo = f"tmp/skopeo-{uuid.uuid4().hex[:6]}"
    tools.skopeo_copy(f"oci:{layout.path}:v1", f"docker://{host}/{repo}:v1", "--dest-creds",
                      f"charlie:{USERS['charlie']}")
    with pytest.raises(ToolError):
        tools.skopeo_copy(f"docker://{host}/{repo}:v1", f"oci:{tmp_path / 'anon'}:v1")
    tools.skopeo("login", "--tls-verify=false", "-u", "charlie", "-p", USERS["charlie"], host)
    tools.skopeo_copy(f"docker://{host}/{repo}:v1", f"oci:{tmp_path / 'back'}:v1")
    assert (tmp_path / "back" / "index.json").exists()


def test_api_key_as_password_with_podman(tmp_path: Path, tools: ContainerTools, auth_server: LiveServer,
                                         as_user: Any) -> None:
    require_tool("podman")
    mary = as_user("mary")
    created = mary.send("POST", "/zot/auth/apikey", json={"label": "ci", "scopes": ["repo"],
                                                          "expirationDate": "2099-01-01T00:00:00Z"})
    assert created.status_code == 201, created.text
    key = created.json()["apiKey"]
    assert key.startswith("zak_") and len(key) == 36
    host = auth_server.hostport
    tools.podman("login", "--tls-verify=false", "-u", "mary", "-p", key, host)
    local, _ = _local_image(tmp_path, tools, "pushed with an API key")
    remote = f"{host}/team/apikey-{uuid.uuid4().hex[:6]}:v1"
    tools.podman_push(local, f"docker://{remote}")

    listed = mary.send("GET", "/zot/auth/apikey").json()["apiKeys"]
    mine = [k for k in listed if k["uuid"] == created.json()["uuid"]]
    assert mine and mine[0]["label"] == "ci" and "apiKey" not in mine[0]
    assert mine[0]["lastUsed"] != "0001-01-01T00:00:00Z"
    # another user's name with mary's key is refused
    assert as_user("eve", key).send("GET", "/v2/").status_code == 401
    assert mary.send("DELETE", f"/zot/auth/apikey?id={mine[0]['uuid']}").status_code == 200
    login = [require_tool("podman"), "login", "--tls-verify=false", "-u", "mary", "-p", key, host]
    revoked = tools.run(login, check=False)
    assert revoked.returncode != 0
