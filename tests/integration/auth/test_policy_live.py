"""zot's example policy through a live gunicorn: the (user, action, repository) -> status table, and a
second user who must not reach a repository outside their policy by any route."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from helpers.auth_policy import TABLE, digest_of, image

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("user", "action", "repo", "expected"), TABLE,
                         ids=[f"{u or 'anonymous'}-{a}-{r}" for u, a, r, _ in TABLE])
def test_policy_table(as_user: Any, user: str | None, action: str, repo: str, expected: int) -> None:
    caller = as_user(user)
    admin = as_user("admin")
    if action == "read":
        response = caller.send("GET", f"/v2/{repo}/manifests/latest",
                               headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    elif action == "create":
        response = caller.push(repo, f"c-{uuid.uuid4().hex[:10]}", f"base of {repo}".encode())
    elif action == "update":
        raw, _ = image(f"base of {repo}".encode())
        response = caller.send("PUT", f"/v2/{repo}/manifests/latest", data=raw,
                               headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    else:
        tag = f"d-{uuid.uuid4().hex[:10]}"
        assert admin.push(repo, tag, tag.encode()).status_code == 201
        response = caller.send("DELETE", f"/v2/{repo}/manifests/{tag}")
    assert response.status_code == expected, response.text
    if expected == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    elif expected == 403:
        assert response.json()["errors"][0]["code"] == "DENIED"


def _search(session: Any, text: str) -> list[str]:
    query = "query($q: String!) { GlobalSearch(query: $q) { Repos { Name } Images { RepoName } } }"
    response = session.send("POST", "/v2/_zot/ext/search", json={"query": query, "variables": {"q": text}})
    assert response.status_code == 200, response.text
    found = response.json()["data"]["GlobalSearch"]
    return [r["Name"] for r in found["Repos"]] + [i["RepoName"] for i in found["Images"]]


def test_second_user_cannot_reach_a_repository_outside_their_policy(as_user: Any) -> None:
    alice, eve = as_user("alice"), as_user("eve")
    secret = f"prod/secret-{uuid.uuid4().hex[:8]}"
    payload = f"secret layer {uuid.uuid4()}".encode()
    assert alice.push(secret, "v1", payload).status_code == 201
    raw, blobs = image(payload)
    manifest_digest, layer = digest_of(raw), digest_of(payload)
    # alice opens an upload in her repository
    opened = alice.send("POST", f"/v2/{secret}/blobs/uploads/")
    assert opened.status_code == 202
    session_path = opened.headers["Location"]

    denied = [
        ("GET", f"/v2/{secret}/manifests/v1"), ("HEAD", f"/v2/{secret}/manifests/v1"),
        ("GET", f"/v2/{secret}/manifests/{manifest_digest}"),
        ("GET", f"/v2/{secret}/blobs/{layer}"), ("HEAD", f"/v2/{secret}/blobs/{layer}"),
        ("GET", f"/v2/{secret}/tags/list"), ("GET", f"/v2/{secret}/referrers/{manifest_digest}"),
        ("POST", f"/v2/{secret}/blobs/uploads/"), ("DELETE", f"/v2/{secret}/manifests/v1"),
        ("DELETE", f"/v2/{secret}/blobs/{layer}"),
        ("PATCH", session_path), ("PUT", f"{session_path}?digest={layer}"), ("GET", session_path),
        ("DELETE", session_path),
        # a repository that does not exist answers the same: nothing tells whether it exists
        ("GET", "/v2/prod/no-such-repo/manifests/v1"), ("GET", "/v2/prod/no-such-repo/tags/list"),
    ]
    for method, path in denied:
        response = eve.send(method, path, data=b"x" if method in ("PATCH", "PUT") else None)
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
        if method != "HEAD":
            assert response.json()["errors"][0]["code"] == "DENIED"
    assert eve.push(secret, "mine").status_code == 403

    # listing and search show nothing of it
    catalog = eve.send("GET", "/v2/_catalog").json()["repositories"]
    assert not [name for name in catalog if name.startswith("prod/")], catalog
    assert secret in as_user("alice").send("GET", "/v2/_catalog").json()["repositories"]
    assert secret not in _search(eve, "secret")
    assert secret in _search(alice, "secret")

    # mounting from it (named, or through the dedupe index) opens a plain upload instead
    target = f"team/eve-{uuid.uuid4().hex[:8]}"
    named = eve.send("POST", f"/v2/{target}/blobs/uploads/?mount={layer}&from={secret}")
    assert named.status_code == 202, named.text
    anywhere = eve.send("POST", f"/v2/{target}/blobs/uploads/?mount={layer}")
    assert anywhere.status_code == 202, anywhere.text
    assert eve.send("HEAD", f"/v2/{target}/blobs/{layer}").status_code == 404
    # ... while alice, who may read it, mounts it
    mounted = alice.send("POST", f"/v2/team/alice-m/blobs/uploads/?mount={layer}&from={secret}")
    assert mounted.status_code == 201

    # alice's upload is still hers and completes
    finished = alice.send("PUT", f"{session_path}?digest={digest_of(b'')}")
    assert finished.status_code == 201, finished.text
    assert blobs

    # the access log names who was refused
    log_lines = (eve.server.workdir / "zotpy.stdout.log").read_text().splitlines()
    refused = [json.loads(line) for line in log_lines if secret in line and '"status": 403' in line]
    assert refused and {line.get("user") for line in refused} == {"eve"}


def test_upload_sessions_belong_to_their_user(as_user: Any) -> None:
    """In a repository both may push to, one user cannot use the other's upload session."""
    mary, eve = as_user("mary"), as_user("eve")
    repo = f"team/shared-{uuid.uuid4().hex[:8]}"
    opened = mary.send("POST", f"/v2/{repo}/blobs/uploads/")
    assert opened.status_code == 202
    path = opened.headers["Location"]
    data = b"mary's chunk"
    for method, extra in (("GET", ""), ("PATCH", ""), ("PUT", f"?digest={digest_of(data)}"), ("DELETE", "")):
        response = eve.send(method, path + extra, data=data if method in ("PATCH", "PUT") else None,
                            headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 404, f"{method}: {response.status_code} {response.text}"
        assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    anonymous = as_user(None).send("PATCH", path, data=data)
    assert anonymous.status_code == 401
    patched = mary.send("PATCH", path, data=data, headers={"Content-Type": "application/octet-stream"})
    assert patched.status_code == 202, patched.text
    done = mary.send("PUT", f"{path}?digest={digest_of(data)}")
    assert done.status_code == 201, done.text


@pytest.mark.parametrize("header", [
    "Basic", "Basic %%%", "Basic " + "QQ==" * 1500, "Bearer x.y.z", "Basic Og==, Basic Og==",
    "Basic w7w6w7w=",
])
def test_malformed_credentials_get_a_clear_401(as_user: Any, header: str) -> None:
    anonymous = as_user(None)
    for path in ("/v2/", "/v2/team/a/tags/list", "/v2/_catalog"):
        response = anonymous.send("GET", path, headers={"Authorization": header,
                                                         "X-Forwarded-For": f"198.20.{len(header) % 250}.1"})
        assert response.status_code == 401, (header, path, response.text)
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
