"""sha512 blobs and manifests through the raw API (skopeo 1.9 cannot push with sha512)."""

from __future__ import annotations

import os

import pytest

from helpers.layout import OCI_MANIFEST, build_image, digest_of
from helpers.registry_client import RegistryClient, expect
from helpers.server import Server

pytestmark = pytest.mark.integration


def test_sha512_blob_upload_styles(live_server: Server, registry: RegistryClient, repo_name: str) -> None:
    pushed = []
    for style in ("post_put", "chunked"):
        data = os.urandom(300_000)
        digest = digest_of(data, "sha512")
        if style == "post_put":
            resp = registry.push_blob_post_put(repo_name, data, digest)
        else:
            resp = registry.push_blob_chunked(repo_name, data, digest, chunk_size=100_000)
        expect(resp, 201)
        assert resp.headers["Docker-Content-Digest"] == digest
        got = expect(registry.get_blob(repo_name, digest), 200)
        assert got.content == data
        assert got.headers["Docker-Content-Digest"] == digest
        pushed.append((digest, data))

    if live_server.flavor == "zotpy":
        for digest, data in pushed:
            path = live_server.root / repo_name / "blobs" / "sha512" / digest.split(":", 1)[1]
            assert path.read_bytes() == data


def test_sha512_manifest(live_server: Server, registry: RegistryClient, repo_name: str) -> None:
    image = build_image(algorithm="sha512", n_layers=2)
    assert image.digest.startswith("sha512:") and image.config.digest.startswith("sha512:")
    digest = registry.push_image(repo_name, image)  # by digest: the reference says sha512
    assert digest == image.digest

    by_digest = expect(registry.get_manifest(repo_name, image.digest), 200)
    assert by_digest.content == image.manifest.data
    assert by_digest.headers["Docker-Content-Digest"] == image.digest
    assert by_digest.headers["Content-Type"] == OCI_MANIFEST

    tagged = expect(registry.put_manifest(repo_name, "sha512-tag", image.manifest.data, OCI_MANIFEST), 201)
    head = expect(registry.head_manifest(repo_name, "sha512-tag"), 200)
    assert head.headers["Docker-Content-Digest"] in {image.digest, tagged.headers["Docker-Content-Digest"]}

    if live_server.flavor == "zotpy":
        path = live_server.root / repo_name / "blobs" / "sha512" / image.digest.split(":", 1)[1]
        assert path.read_bytes() == image.manifest.data
