"""Tests for the search extension's rules: ranks, pages, sorts, filters, argument checks, schema."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLError, graphql_sync

from zotpy.extensions.search.paging import IMAGE_SORTS, REPO_SORTS, Filter, Page, page_input, paginate
from zotpy.extensions.search.resolvers import (
    MAX_ARGUMENT_LENGTH,
    NO_SCANNING,
    _check_arguments,
    rank_repo_name,
)
from zotpy.extensions.search.views import load_schema


@pytest.mark.parametrize(("query", "name", "rank"), [
    ("base", "base", 0),
    ("base", "zotpy/base", 1),
    ("base", "zotpy/basement", 1),
    ("base", "tools/database", 5),
    ("base", "base/tools", 10),
    ("base", "a/base/c", 300),
    ("zotpy/base", "zotpy/basement", 1),
    ("library/ubuntu", "mirror/library/ubuntu", 800),
    ("foo/bar/b", "foo/bar/baz/repo", 10),
    ("a/b/c", "a/b", -1),
    ("nothing", "zotpy/base", -1),
])
def test_rank_repo_name_follows_zot(query: str, name: str, rank: int) -> None:
    assert rank_repo_name(query, name) == rank


def test_page_input_rules() -> None:
    assert page_input(None, IMAGE_SORTS, "images") == Page(0, 0, "RELEVANCE")
    wanted = {"limit": 2, "offset": 1, "sortBy": "STARS"}
    assert page_input(wanted, REPO_SORTS, "repositories") == Page(2, 1, "STARS")
    for bad in ({"limit": -1}, {"offset": -5}, {"sortBy": "STARS"}, {"sortBy": "SEVERITY"}):
        with pytest.raises(GraphQLError):
            page_input(bad, IMAGE_SORTS, "images")


@pytest.mark.parametrize(("page", "items", "info"), [
    (Page(0, 0), [1, 2, 3], {"TotalCount": 3, "ItemCount": 3}),
    (Page(2, 0), [1, 2], {"TotalCount": 3, "ItemCount": 2}),
    (Page(2, 2), [3], {"TotalCount": 3, "ItemCount": 1}),
    (Page(2, 9), [], {"TotalCount": 3, "ItemCount": 0}),
    (Page(0, 1), [], {"TotalCount": 3, "ItemCount": 0}),
])
def test_paginate_follows_zot(page: Page, items: list[int], info: dict[str, int]) -> None:
    assert paginate([1, 2, 3], page) == (items, info)


def test_filters_match_any_platform_and_the_architecture_with_or_without_variant() -> None:
    flt = Filter.parse({"Os": ["Linux"], "Arch": ["arm"]})
    assert flt.platform_ok([("windows", "amd64"), ("linux", "arm/v7")])
    assert not flt.platform_ok([("linux", "amd64")])
    assert Filter.parse({"Arch": ["arm/v7"]}).platform_ok([("linux", "arm/v7")])
    assert Filter.parse({"Os": [None, " "]}).platform_ok([(None, None)]), "empty conditions are ignored"
    assert not Filter.parse({"IsStarred": True}).user_ok("app", set(), set())
    assert Filter.parse({"IsBookmarked": False}).user_ok("app", set(), set())


def test_long_strings_anywhere_in_the_arguments_are_refused() -> None:
    _check_arguments({"filter": {"Os": ["x" * MAX_ARGUMENT_LENGTH]}})
    with pytest.raises(GraphQLError, match="filter.Os"):
        _check_arguments({"filter": {"Os": ["x" * (MAX_ARGUMENT_LENGTH + 1)]}})


def test_the_schema_has_zots_queries_and_arguments() -> None:
    schema = load_schema()
    fields = schema.query_type.fields  # type: ignore[union-attr]
    expected: dict[str, set[str]] = {
        "CVEListForImage": {"image", "requestedPage", "searchedCVE", "excludedCVE", "severity"},
        "CVEDiffListForImages": {"minuend", "subtrahend", "requestedPage", "searchedCVE", "excludedCVE"},
        "ImageListForCVE": {"id", "filter", "requestedPage"},
        "ImageListWithCVEFixed": {"id", "image", "filter", "requestedPage"},
        "ImageListForDigest": {"id", "requestedPage"},
        "RepoListWithNewestImage": {"requestedPage"},
        "ImageList": {"repo", "requestedPage"},
        "ExpandedRepoInfo": {"repo"},
        "GlobalSearch": {"query", "filter", "requestedPage"},
        "DerivedImageList": {"image", "digest", "requestedPage"},
        "BaseImageList": {"image", "digest", "requestedPage"},
        "Image": {"image"},
        "Referrers": {"repo", "digest", "type"},
        "StarredRepos": {"requestedPage"},
        "BookmarkedRepos": {"requestedPage"},
    }
    assert {name: set(field.args) for name, field in fields.items()} == expected
    sort = schema.get_type("SortCriteria")
    assert set(sort.values) == {  # type: ignore[union-attr]
        "RELEVANCE", "UPDATE_TIME", "ALPHABETIC_ASC", "ALPHABETIC_DSC", "SEVERITY", "STARS", "DOWNLOADS"}


@pytest.mark.parametrize("query", [
    '{ CVEListForImage(image: "a:1") { Tag } }',
    '{ ImageListForCVE(id: "CVE-1") { Page { TotalCount } } }',
    '{ ImageListWithCVEFixed(id: "CVE-1", image: "a") { Page { TotalCount } } }',
    '{ CVEDiffListForImages(minuend: {Repo: "a", Tag: "1"}, subtrahend: {Repo: "a", Tag: "2"}) '
    "{ Page { TotalCount } } }",
])
def test_cve_queries_say_scanning_is_off(query: str) -> None:
    result: Any = graphql_sync(load_schema(), query, context_value={})
    assert result.data is None
    assert [error.message for error in result.errors] == [NO_SCANNING]
