"""Dedupe maintenance on a root a live gunicorn filled with dedupe off, then serves with dedupe on.

The scheduler process started by the gunicorn hooks runs the pass once at start, beside the workers;
afterwards skopeo pulls every image back whole.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.clients import ContainerTools
from helpers.layout import build_image, make_layer
from helpers.server import LiveServer, Server, require_zotpy

pytestmark = pytest.mark.integration

REPOS = ("dedupe/a", "dedupe/b", "dedupe/c")


def inodes(root: Path, digest: str) -> set[int]:
    algorithm, encoded = digest.split(":", 1)
    return {(root / repo / "blobs" / algorithm / encoded).stat().st_ino for repo in REPOS}


def test_turning_dedupe_on_links_copies_and_every_image_pulls(
        server_factory: Callable[..., Server], tools: ContainerTools, tmp_path: Path) -> None:
    server = server_factory(workers=1, dedupe=False)
    require_zotpy(server, "dedupe on disk")
    assert isinstance(server, LiveServer)
    base = make_layer(size=256 * 1024)
    images = {repo: build_image([base, make_layer(size=1024)]) for repo in REPOS}
    client = server.client()
    for repo, image in images.items():
        client.push_image(repo, image, "v1")
    assert len(inodes(server.root, base.digest)) == 3  # separate copies

    server.dedupe = True
    server.restart()
    # The scheduler the server starts runs the dedupe pass once, at start.
    deadline = time.monotonic() + 30
    while len(inodes(server.root, base.digest)) > 1:
        assert time.monotonic() < deadline, f"duplicates never linked\n{server.logs()}"
        time.sleep(0.1)

    for repo, image in images.items():
        out = tmp_path / repo.replace("/", "_")
        tools.skopeo_copy(f"docker://{server.hostport}/{repo}:v1", f"oci:{out}:v1")
        index = json.loads((out / "index.json").read_text())
        assert index["manifests"][0]["digest"] == image.digest
        for blob in image.blobs:
            algorithm, encoded = blob.digest.split(":", 1)
            pulled = (out / "blobs" / algorithm / encoded).read_bytes()
            assert hashlib.sha256(pulled).hexdigest() == encoded
