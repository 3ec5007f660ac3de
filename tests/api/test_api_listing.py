"""tags/list and _catalog: sorting, pagination with n/last and Link, sub-path stores."""

from __future__ import annotations

import pytest

from oci_api_client import assert_error, parse_link
from zotpy.config.model import StorageConfig

TAGS = ["v10", "v2", "alpha", "beta", "1", "latest", "zeta", "a1", "a10", "a2"]


@pytest.fixture
def tagged(reg):
    img = reg.image_manifest("repo")
    for tag in TAGS:
        assert reg.put_manifest("repo", tag, img.raw).status_code == 201
    return reg


def test_tags_sorted(tagged):
    resp = tagged.get("/v2/repo/tags/list")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["name"] == "repo"
    assert doc["tags"] == sorted(TAGS)
    assert "Link" not in resp.headers


def test_tags_mixed_case_sorted(reg):
    img = reg.image_manifest("repo")
    tags = ["b", "B", "a", "A", "_x", "0", "Z9", "z"]
    for tag in tags:
        assert reg.put_manifest("repo", tag, img.raw).status_code == 201
    got = reg.tags("repo")
    assert sorted(got) == sorted(tags)
    assert got in (sorted(tags), sorted(tags, key=str.lower)), got


@pytest.mark.parametrize("n", [1, 2, 3, 4, 9])
def test_tags_paged_by_n(tagged, n):
    expected = sorted(TAGS)
    resp = tagged.get(f"/v2/repo/tags/list?n={n}")
    assert resp.status_code == 200
    assert resp.get_json()["tags"] == expected[:n]
    link = parse_link(resp.headers.get("Link"))
    assert link is not None, "a truncated page must carry Link rel=next"
    target, query = link
    assert target.split("?")[0].endswith("/v2/repo/tags/list")
    assert query["n"] == [str(n)]
    assert query["last"] == [expected[n - 1]]
    items, pages = tagged.follow_pages(f"/v2/repo/tags/list?n={n}")
    assert items == expected
    assert all(len(p) <= n for p in pages)
    assert all(len(p) == n for p in pages[:-1])


@pytest.mark.parametrize("n", [10, 11, 1000])
def test_tags_n_at_least_total(tagged, n):
    resp = tagged.get(f"/v2/repo/tags/list?n={n}")
    assert resp.get_json()["tags"] == sorted(TAGS)
    if n > len(TAGS):
        assert "Link" not in resp.headers


def test_tags_n_zero(tagged):
    resp = tagged.get("/v2/repo/tags/list?n=0")
    assert resp.status_code == 200
    assert resp.get_json()["tags"] == []
    assert "Link" not in resp.headers


@pytest.mark.parametrize("n", ["-1", "-100"])
def test_tags_n_negative(tagged, n):
    assert tagged.get(f"/v2/repo/tags/list?n={n}").status_code == 400


@pytest.mark.parametrize("n", ["abc", "1.5", "", "99999999999999999999999999", "0x10", " 1"])
def test_tags_n_malformed(tagged, n):
    resp = tagged.get(f"/v2/repo/tags/list?n={n}")
    assert resp.status_code in (200, 400)
    if resp.status_code == 200:
        assert set(resp.get_json()["tags"]) <= set(TAGS)


def test_tags_repeated_n(tagged):
    resp = tagged.get("/v2/repo/tags/list?n=1&n=2")
    assert resp.status_code in (200, 400)


@pytest.mark.parametrize("last", ["alpha", "a10", "latest", "v2", "1"])
def test_tags_last(tagged, last):
    expected = sorted(TAGS)
    after = [t for t in expected if t > last]
    assert tagged.tags("repo", f"?last={last}") == after
    assert tagged.tags("repo", f"?n=2&last={last}") == after[:2]


def test_tags_last_beyond_end(tagged):
    resp = tagged.get("/v2/repo/tags/list?last=zzzz")
    assert resp.status_code in (200, 404)
    if resp.status_code == 200:
        assert not resp.get_json().get("tags")
        assert "Link" not in resp.headers


def test_tags_last_not_a_tag(tagged):
    """`last` names a position in lexical order; an unknown value either lists what
    follows it (distribution) or is refused with 404 (zot). Never an error page."""
    resp = tagged.get("/v2/repo/tags/list?last=b")
    assert resp.status_code in (200, 400, 404)
    if resp.status_code == 200:
        assert resp.get_json()["tags"] == [t for t in sorted(TAGS) if t > "b"]


def test_tags_unknown_repo(reg):
    assert_error(reg.get("/v2/nosuch/tags/list"), 404, "NAME_UNKNOWN")


def test_tags_repo_with_untagged_manifest_only(reg):
    reg.push_image("repo", by_digest=True)
    resp = reg.get("/v2/repo/tags/list")
    assert resp.status_code == 200
    assert not resp.get_json().get("tags")


def test_tags_reflect_deletes(tagged):
    assert tagged.delete("/v2/repo/manifests/beta").status_code == 202
    assert tagged.tags("repo") == sorted(t for t in TAGS if t != "beta")


def test_tags_nested_name(reg):
    reg.push_image("a/b/c", "v1")
    resp = reg.get("/v2/a/b/c/tags/list")
    assert resp.status_code == 200
    assert resp.get_json() == {"name": "a/b/c", "tags": ["v1"]}


def test_tags_many_pages(reg):
    img = reg.image_manifest("repo")
    tags = [f"t{i:03d}" for i in range(120)]
    for tag in tags:
        assert reg.put_manifest("repo", tag, img.raw).status_code == 201
    items, pages = reg.follow_pages("/v2/repo/tags/list?n=25")
    assert items == tags
    assert [len(p) for p in pages] == [25, 25, 25, 25, 20]


# -- catalog ------------------------------------------------------------------------------

REPOS = ["b", "a", "a/b/c", "c-d", "a/b", "z.z/y_y", "0"]


@pytest.fixture
def many_repos(reg):
    for name in REPOS:
        reg.push_image(name, "v1")
    return reg


def test_catalog_sorted(many_repos):
    resp = many_repos.get("/v2/_catalog")
    assert resp.status_code == 200
    assert resp.get_json()["repositories"] == sorted(REPOS)


def test_catalog_empty(reg):
    resp = reg.get("/v2/_catalog")
    assert resp.status_code == 200
    assert not resp.get_json().get("repositories")


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_catalog_paged(many_repos, n):
    expected = sorted(REPOS)
    resp = many_repos.get(f"/v2/_catalog?n={n}")
    assert resp.get_json()["repositories"] == expected[:n]
    link = parse_link(resp.headers.get("Link"))
    assert link is not None
    target, query = link
    assert target.split("?")[0].endswith("/v2/_catalog")
    assert query["n"] == [str(n)] and query["last"] == [expected[n - 1]]
    items, _ = many_repos.follow_pages(f"/v2/_catalog?n={n}")
    assert items == expected


def test_catalog_last(many_repos):
    expected = sorted(REPOS)
    resp = many_repos.get("/v2/_catalog?last=a/b")
    assert resp.get_json()["repositories"] == [r for r in expected if r > "a/b"]
    resp = many_repos.get("/v2/_catalog?n=2&last=a")
    assert resp.get_json()["repositories"] == [r for r in expected if r > "a"][:2]


@pytest.mark.parametrize("n", ["-1", "abc", "", "99999999999999999999999"])
def test_catalog_malformed_n(many_repos, n):
    resp = many_repos.get(f"/v2/_catalog?n={n}")
    assert resp.status_code in (200, 400)


def test_catalog_blob_only_repo_is_not_an_error(reg):
    reg.push_blob("blobsonly", b"data")
    resp = reg.get("/v2/_catalog")
    assert resp.status_code == 200


def test_catalog_reflects_new_repos(reg):
    reg.push_image("first", "v1")
    assert reg.catalog() == ["first"]
    reg.push_image("second", "v1")
    assert reg.catalog() == ["first", "second"]


def test_catalog_with_sub_path_store(make_registry, tmp_path):
    sub_root = tmp_path / "sub"
    reg = make_registry(sub_paths={"sp": StorageConfig(root_directory=str(sub_root))})
    for name in ("main1", "sp/x", "sp/a/b", "zz"):
        reg.push_image(name, "v1")
    assert reg.catalog() == sorted(["main1", "sp/x", "sp/a/b", "zz"])
    items, _ = reg.follow_pages("/v2/_catalog?n=1")
    assert items == sorted(["main1", "sp/x", "sp/a/b", "zz"])
    assert reg.tags("sp/x") == ["v1"]
