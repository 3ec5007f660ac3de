"""What a ``/v2/`` request touches: its kind, repository, reference or upload session.

The same patterns as the distribution routes (``zotpy.api.routes``), read here without importing the
API: access control runs before routing and must name the repository a request reaches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zotpy.auth.policy import CREATE, DELETE, READ

BASE, CATALOG, DISCOVER, MGMT, EXTENSION = "base", "catalog", "discover", "mgmt", "extension"
MANIFEST, UPLOAD_START, UPLOAD, BLOB, TAGS, REFERRERS, OTHER = (
    "manifest", "upload_start", "upload", "blob", "tags", "referrers", "other")

_REPO_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (MANIFEST, re.compile(r"^(?P<name>.+?)/manifests/(?P<reference>[^/]+)$")),
    (UPLOAD_START, re.compile(r"^(?P<name>.+?)/blobs/uploads/?$")),
    (UPLOAD, re.compile(r"^(?P<name>.+?)/blobs/uploads/(?P<session>[^/]+)$")),
    (BLOB, re.compile(r"^(?P<name>.+?)/blobs/(?P<reference>[^/]+)$")),
    (TAGS, re.compile(r"^(?P<name>.+?)/tags/list$")),
    (REFERRERS, re.compile(r"^(?P<name>.+?)/referrers/(?P<reference>[^/]+)$")),
)


@dataclass(frozen=True)
class Target:
    kind: str
    repo: str | None = None
    reference: str | None = None
    session: str | None = None


def classify(path: str) -> Target | None:
    """The target of ``path``; None when it is not under ``/v2``."""
    if path in ("/v2", "/v2/"):
        return Target(BASE)
    if not path.startswith("/v2/"):
        return None
    rest = path[len("/v2/"):]
    if rest == "_catalog":
        return Target(CATALOG)
    if rest == "_oci/ext/discover":
        return Target(DISCOVER)
    if rest == "_zot/ext/mgmt":
        return Target(MGMT)
    if rest.startswith("_zot/ext/"):
        return Target(EXTENSION)
    for kind, pattern in _REPO_ROUTES:
        match = pattern.match(rest)
        if match is not None:
            groups = match.groupdict()
            return Target(kind, groups["name"], groups.get("reference"), groups.get("session"))
    return Target(OTHER)


def base_action(target: Target, method: str) -> str:
    """The action a method needs on a repository, before the create/update split of manifest PUTs.

    Every use of an upload session is part of a push, so it needs ``create`` even to read its status.
    """
    if target.kind in (UPLOAD_START, UPLOAD):
        return CREATE
    if method in ("GET", "HEAD"):
        return READ
    if method == "DELETE":
        return DELETE
    return CREATE
