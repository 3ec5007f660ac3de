"""Bearer-token logins end to end: a token service fixture, zotpy under gunicorn, podman and skopeo."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from helpers.clients import ContainerTools, ToolError
from helpers.env import require_tool
from helpers.layout import OCILayout, build_image, make_layer
from helpers.registry_client import error_codes
from helpers.server import LiveServer, make_server
from helpers.token_service import Account, TokenService

pytestmark = pytest.mark.integration

ACCOUNTS = {
    "alice": Account("alice-pass", {"alice/*": ["pull", "push", "delete"], "shared/*": ["pull", "push"]}),
    "bob": Account("bob-pass", {"shared/*": ["pull"]}),
}


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenService]:
    with TokenService(tmp_path_factory.mktemp("token-service"), ACCOUNTS) as service:
        yield service


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tokens: TokenService) -> Iterator[LiveServer]:
    server = make_server(tmp_path_factory.mktemp("bearer-registry"), workers=1,
                         http_extra={"auth": {"bearer": tokens.bearer_settings()}},
                         extra_env={"ZOTPY_AUTH_FAILURES": "0"})  # the bad-token test fails on purpose
    assert isinstance(server, LiveServer)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def layout(tmp_path: Path) -> OCILayout:
    # Random layers: containers/image caches blob substitutions across runs, so content must be new.
    image = build_image(layers=[make_layer()], labels={"auth": "bearer"})
    return OCILayout(tmp_path / "layout").write({"v1": image})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_challenge_points_at_the_token_service(server: LiveServer, tokens: TokenService) -> None:
    resp = requests.get(f"{server.url}/v2/", timeout=30)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == f'Bearer realm="{tokens.realm}",service="{tokens.service}"'
    assert error_codes(resp) == ["UNAUTHORIZED"]


def test_anonymous_challenge_names_the_scope(server: LiveServer, tokens: TokenService) -> None:
    """zot: a repository request without a token is told which scope to ask the token service for."""
    resp = requests.get(f"{server.url}/v2/shared/app/tags/list", timeout=30)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == (
        f'Bearer realm="{tokens.realm}",service="{tokens.service}",scope="repository:shared/app:pull"'
    )


def test_podman_login_push_and_pull(server: LiveServer, tokens: TokenService, tools: ContainerTools,
                                    layout: OCILayout) -> None:
    require_tool("podman")
    local = "localhost/zotpy-test/bearer:v1"
    tools.load_layout(layout.path, "v1", local)
    image_id = tools.podman_image_id(local)
    with pytest.raises(ToolError):
        tools.podman("login", "--tls-verify=false", "-u", "alice", "-p", "wrong", server.hostport)
    tools.podman("login", "--tls-verify=false", "-u", "alice", "-p", "alice-pass", server.hostport)
    remote = f"{server.hostport}/alice/app:v1"
    tools.podman_push(local, f"docker://{remote}")
    tools.podman("rmi", "--force", local)
    assert tools.podman_pull(remote) == image_id
    asked = {scope for request in tokens.requests if request["user"] == "alice"
             for scope in request["scope"] or []}
    assert any(scope.startswith("repository:alice/app:") and "push" in scope for scope in asked), asked


def test_skopeo_with_credentials_gets_only_what_the_token_grants(
    server: LiveServer, tools: ContainerTools, layout: OCILayout, tmp_path: Path
) -> None:
    require_tool("skopeo")
    target = f"docker://{server.hostport}/shared/tool:v1"
    tools.skopeo_copy(f"oci:{layout.path}:v1", target, "--dest-creds", "alice:alice-pass")
    with pytest.raises(ToolError):  # bob's tokens grant pull only
        tools.skopeo_copy(f"oci:{layout.path}:v1", f"docker://{server.hostport}/shared/bob:v1",
                          "--dest-creds", "bob:bob-pass")
    with pytest.raises(ToolError):  # nothing at all under alice/ for bob
        tools.skopeo_copy(f"docker://{server.hostport}/alice/app:v1", f"oci:{tmp_path / 'x'}:v1",
                          "--src-creds", "bob:bob-pass")
    back = OCILayout(tmp_path / "back")
    tools.skopeo_copy(target, f"oci:{back.path}:v1", "--src-creds", "bob:bob-pass")
    assert back.tags()["v1"]["digest"] == layout.tags()["v1"]["digest"]


def test_bad_tokens_are_401_never_500(server: LiveServer, tokens: TokenService) -> None:
    grant = [{"type": "repository", "name": "shared/tool", "actions": ["pull"]}]
    url = f"{server.url}/v2/shared/tool/tags/list"
    good = tokens.issue("alice", grant)
    assert requests.get(url, headers=bearer(good), timeout=30).status_code in (200, 404)
    forged_key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    bad = {
        "expired": tokens.issue("alice", grant, exp=now - 600, iat=now - 900, nbf=now - 900),
        "wrong signature": jwt.encode({"sub": "alice", "exp": now + 300, "aud": tokens.service,
                                       "access": grant}, forged_key, algorithm="ES256"),
        "wrong audience": tokens.issue("alice", grant, aud="another-registry"),
        "alg none": jwt.encode({"sub": "alice", "exp": now + 300, "access": grant}, None, algorithm="none"),
        "malformed": "not-a-jwt",
        "truncated": good[:-10],
    }
    for name, token in bad.items():
        resp = requests.get(url, headers=bearer(token), timeout=30)
        assert resp.status_code == 401, (name, resp.status_code, resp.text)
        assert error_codes(resp) == ["UNAUTHORIZED"], name
        assert resp.headers["WWW-Authenticate"].startswith(f'Bearer realm="{tokens.realm}"'), name
    for header in ("Basic YWxpY2U6YWxpY2UtcGFzcw==", "Bearer", "Bearer  ", "Token abc"):
        resp = requests.get(url, headers={"Authorization": header}, timeout=30)
        assert resp.status_code == 401, (header, resp.status_code)


def test_token_without_the_grant_asks_for_a_better_one(server: LiveServer, tokens: TokenService) -> None:
    pull_only = tokens.issue("bob", [{"type": "repository", "name": "shared/tool", "actions": ["pull"]}])
    resp = requests.post(f"{server.url}/v2/shared/tool/blobs/uploads/", headers=bearer(pull_only), timeout=30)
    assert resp.status_code == 401
    assert 'scope="repository:shared/tool:push"' in resp.headers["WWW-Authenticate"]
    other_repo = tokens.issue("bob", [{"type": "repository", "name": "shared/else", "actions": ["pull"]}])
    resp = requests.get(f"{server.url}/v2/shared/tool/tags/list", headers=bearer(other_repo), timeout=30)
    assert resp.status_code == 401
    assert 'scope="repository:shared/tool:pull"' in resp.headers["WWW-Authenticate"]
