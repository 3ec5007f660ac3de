"""The access-control fixture data shared by the API and integration auth tests.

``POLICY`` is zot's config-policy example without its CEL ``conditions`` (groups, ``**``, ``tmp/**``,
``infra/*``, ``repos2/repo``, ``prod/**``, admin), plus ``public/**`` readable by anonymous callers.
``TABLE`` lists (user, action, repository) -> expected status, worked out by hand from zot's rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

USERS = {name: f"{name}-Pw1" for name in (
    "admin", "charlie", "mary", "alice", "bob", "mallory", "jack", "mike", "eve")}

POLICY: dict[str, Any] = {
    "groups": {"group1": {"users": ["jack", "john", "jane", "ana"]},
               "group2": {"users": ["alice", "mike", "jim"]}},
    "repositories": {
        "**": {"policies": [{"users": ["charlie"], "groups": ["admins", "developers", "group1"],
                             "actions": ["read", "create", "update"]},
                            {"users": ["mary"], "groups": ["group2"],
                             "actions": ["read", "create", "update", "delete"]}],
               "defaultPolicy": ["read", "create"]},
        "tmp/**": {"defaultPolicy": ["read", "create", "update"]},
        "infra/*": {"policies": [{"users": ["alice", "bob"], "groups": ["maintainers", "platformteam"],
                                  "actions": ["create", "read", "update", "delete"]},
                                 {"users": ["mallory"], "actions": ["create", "read"]}],
                    "defaultPolicy": ["read"]},
        "repos2/repo": {"policies": [{"users": ["bob"], "groups": ["sparkle_team", "repo2_team"],
                                      "actions": ["read", "create"]},
                                     {"users": ["mallory"], "actions": ["create", "read"]}],
                        "defaultPolicy": ["read"]},
        "prod/**": {"policies": [{"users": ["alice"], "actions": ["read", "create", "update"]}]},
        "public/**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read"]},
    },
    "adminPolicy": {"users": ["admin"], "groups": ["admins", "developers"],
                    "actions": ["read", "create", "update", "delete"]},
}

REPOS = ("team/a", "tmp/x", "infra/app", "infra/sub/app", "repos2/repo", "prod/svc", "public/x")

OK = {"read": 200, "create": 201, "update": 201, "delete": 202}
ANON, DENIED = 401, 403

# (user or None for anonymous, action, repository, expected status)
TABLE: list[tuple[str | None, str, str, int]] = [
    # eve: only defaultPolicy applies to her
    ("eve", "read", "team/a", 200), ("eve", "create", "team/a", 201), ("eve", "update", "team/a", DENIED),
    ("eve", "delete", "team/a", DENIED),
    ("eve", "update", "tmp/x", 201), ("eve", "delete", "tmp/x", DENIED),
    ("eve", "read", "infra/app", 200), ("eve", "create", "infra/app", DENIED),
    ("eve", "create", "infra/sub/app", 201),  # infra/* is one level: ** decides
    ("eve", "read", "repos2/repo", 200), ("eve", "create", "repos2/repo", DENIED),
    ("eve", "read", "prod/svc", DENIED), ("eve", "create", "prod/svc", DENIED),
    ("eve", "read", "public/x", 200), ("eve", "create", "public/x", DENIED),
    # anonymous: only public/**, read
    (None, "read", "team/a", ANON), (None, "read", "public/x", 200), (None, "create", "public/x", ANON),
    (None, "read", "prod/svc", ANON), (None, "delete", "tmp/x", ANON),
    # user policies of **
    ("charlie", "update", "team/a", 201), ("charlie", "delete", "team/a", DENIED),
    ("charlie", "read", "prod/svc", DENIED), ("charlie", "create", "infra/app", DENIED),
    ("mary", "delete", "team/a", 202), ("mary", "create", "infra/app", DENIED),
    ("mary", "update", "tmp/x", 201),
    # group policies (group1: jack; group2: alice, mike)
    ("jack", "update", "team/a", 201), ("jack", "delete", "team/a", DENIED),
    ("mike", "delete", "team/a", 202), ("mike", "delete", "infra/app", DENIED),
    ("mike", "read", "infra/app", 200),
    # infra/* and repos2/repo
    ("alice", "delete", "infra/app", 202), ("alice", "read", "prod/svc", 200),
    ("alice", "update", "prod/svc", 201), ("alice", "delete", "prod/svc", DENIED),
    ("bob", "update", "infra/app", 201), ("bob", "create", "repos2/repo", 201),
    ("bob", "update", "repos2/repo", DENIED), ("bob", "read", "team/a", 200),
    ("mallory", "create", "infra/app", 201), ("mallory", "update", "infra/app", DENIED),
    ("mallory", "create", "repos2/repo", 201), ("mallory", "delete", "infra/app", DENIED),
    # admin
    ("admin", "delete", "prod/svc", 202), ("admin", "read", "prod/svc", 200),
    ("admin", "update", "repos2/repo", 201), ("admin", "delete", "public/x", 202),
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

Send = Callable[..., Any]
"""``send(method, path, headers=..., data=...) -> response`` with ``status_code`` and ``headers``."""


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image(payload: bytes) -> tuple[bytes, list[bytes]]:
    """A small image manifest and its blobs (config, one layer)."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
           "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(payload), "size": len(payload)}]}
    return json.dumps(doc).encode(), [config, payload]


def push(send: Send, repo: str, tag: str, payload: bytes = b"layer",
         headers: Mapping[str, str] | None = None) -> Any:
    """Push blobs (monolithic) then the manifest; the first failing response, else the manifest PUT's."""
    raw, blobs = image(payload)
    for blob in blobs:
        response = send("POST", f"/v2/{repo}/blobs/uploads/?digest={digest_of(blob)}", data=blob,
                        headers={**(headers or {}), "Content-Type": "application/octet-stream"})
        if response.status_code != 201:
            return response
    return send("PUT", f"/v2/{repo}/manifests/{tag}", data=raw,
                headers={**(headers or {}), "Content-Type": OCI_MANIFEST})
