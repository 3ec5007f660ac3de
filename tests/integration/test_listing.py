"""Tag lists and the catalog over real HTTP, paged with ``n``/``last`` and ``Link`` headers."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlparse

import pytest

from helpers.layout import build_image
from helpers.registry_client import RegistryClient, describe, error_codes, expect

pytestmark = pytest.mark.integration


def test_tags_list_pagination(registry: RegistryClient, repo_name: str) -> None:
    image = build_image(n_layers=1)
    registry.push_image(repo_name, image)
    tags = ["v1.0", "latest", "beta_2", "A", "v1.1", "z9", "0"]
    for tag in tags:
        registry.push_manifest(repo_name, image.manifest, tag)
    expected = sorted(tags)

    full = expect(registry.tags(repo_name), 200).json()
    assert full == {"name": repo_name, "tags": expected}

    first = expect(registry.tags(repo_name, n=3), 200)
    assert first.json()["tags"] == expected[:3]
    link = first.links["next"]["url"]
    query = parse_qs(urlparse(link).query)
    assert urlparse(link).path == f"/v2/{repo_name}/tags/list"
    assert query == {"n": ["3"], "last": [expected[2]]}, first.headers["Link"]

    pages = list(registry.follow_pages(first, "tags"))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [t for page in pages for t in page] == expected

    after = expect(registry.tags(repo_name, last=expected[3]), 200).json()["tags"]
    assert after == expected[4:]


def test_tags_of_unknown_repository(registry: RegistryClient, repo_name: str) -> None:
    resp = registry.tags(f"{repo_name}/never-pushed")
    assert resp.status_code == 404 and "NAME_UNKNOWN" in error_codes(resp), describe(resp)


def test_catalog_pagination(registry: RegistryClient) -> None:
    prefix = f"catalog-{uuid.uuid4().hex[:8]}"
    names = sorted(f"{prefix}/{suffix}" for suffix in ("b", "a", "c/d", "e"))
    image = build_image(n_layers=1)
    for name in names:
        registry.push_image(name, image, "v1")

    whole = expect(registry.catalog(), 200).json()["repositories"]
    assert whole == sorted(whole)
    assert [r for r in whole if r.startswith(prefix + "/")] == names

    seen: list[str] = []
    for page in registry.follow_pages(expect(registry.catalog(n=2), 200), "repositories"):
        assert len(page) <= 2
        seen.extend(page)
    assert seen == whole

    start = expect(registry.catalog(n=2, last=names[0]), 200).json()["repositories"]
    assert start == names[1:3]
