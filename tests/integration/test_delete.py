"""Delete flows: untag, delete by digest, blob deletes refused while referenced, dedupe copies survive."""

from __future__ import annotations

import pytest

from helpers.layout import build_image
from helpers.registry_client import RegistryClient, describe, error_codes, expect
from helpers.server import Server

pytestmark = pytest.mark.integration


def test_delete_by_tag_untags_only(registry: RegistryClient, repo_name: str) -> None:
    image = build_image(n_layers=1)
    registry.push_image(repo_name, image, "one")
    registry.push_manifest(repo_name, image.manifest, "two")

    resp = registry.delete_manifest(repo_name, "one")
    assert resp.status_code == 202, describe(resp)

    gone = registry.get_manifest(repo_name, "one")
    assert gone.status_code == 404 and "MANIFEST_UNKNOWN" in error_codes(gone), describe(gone)
    assert expect(registry.get_manifest(repo_name, "two"), 200).content == image.manifest.data
    assert expect(registry.get_manifest(repo_name, image.digest), 200).content == image.manifest.data
    assert expect(registry.tags(repo_name), 200).json()["tags"] == ["two"]


def test_delete_by_digest_then_blobs(live_server: Server, registry: RegistryClient, repo_name: str) -> None:
    image = build_image(n_layers=2)
    registry.push_image(repo_name, image, "latest")
    layer = image.layers[0]
    # The same layer in a second repository: with dedupe this is one file on disk, linked twice.
    other = f"{repo_name}/other"
    registry.push_blob(other, layer)

    if live_server.flavor == "zotpy":
        refused = registry.delete_blob(repo_name, layer.digest)
        assert refused.status_code == 405, describe(refused)
        assert "DENIED" in error_codes(refused)
        expect(registry.head_blob(repo_name, layer.digest), 200)

    resp = registry.delete_manifest(repo_name, image.digest)
    assert resp.status_code == 202, describe(resp)
    assert registry.get_manifest(repo_name, image.digest).status_code == 404
    assert registry.get_manifest(repo_name, "latest").status_code == 404

    resp = registry.delete_blob(repo_name, layer.digest)
    assert resp.status_code == 202, describe(resp)
    head = registry.head_blob(repo_name, layer.digest)
    assert head.status_code == 404, describe(head)
    get = registry.get_blob(repo_name, layer.digest)
    assert get.status_code == 404 and "BLOB_UNKNOWN" in error_codes(get), describe(get)

    # The other repository's copy is untouched.
    assert expect(registry.get_blob(other, layer.digest), 200).content == layer.data
    # The remaining blobs of the deleted image are still there until deleted themselves.
    expect(registry.head_blob(repo_name, image.layers[1].digest), 200)


def test_delete_unknown(registry: RegistryClient, repo_name: str) -> None:
    image = build_image(n_layers=1)
    registry.push_image(repo_name, image, "v1")
    other = build_image(n_layers=1)
    resp = registry.delete_manifest(repo_name, other.digest)
    assert resp.status_code == 404 and "MANIFEST_UNKNOWN" in error_codes(resp), describe(resp)
    resp = registry.delete_blob(repo_name, other.layers[0].digest)
    assert resp.status_code == 404 and "BLOB_UNKNOWN" in error_codes(resp), describe(resp)


def test_manifest_referencing_missing_blob_is_refused(registry: RegistryClient, repo_name: str) -> None:
    image = build_image(n_layers=2)
    registry.push_blob(repo_name, image.config)
    registry.push_blob(repo_name, image.layers[0])
    resp = registry.put_manifest(repo_name, "v1", image.manifest.data, image.manifest.media_type)
    # zot and Distribution answer 400; the spec's endpoint table lists 404 for a failed manifest PUT.
    assert resp.status_code in (400, 404), describe(resp)
    assert "MANIFEST_BLOB_UNKNOWN" in error_codes(resp)
    assert registry.get_manifest(repo_name, "v1").status_code == 404
