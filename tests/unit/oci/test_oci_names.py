"""Tests for zotpy.oci.names: the distribution spec's repository name and tag grammar."""

from __future__ import annotations

import pytest

from zotpy.errors import ManifestInvalid, NameInvalid
from zotpy.oci.names import MAX_NAME_LENGTH, check_name, check_tag, is_valid_name, is_valid_tag

VALID_NAMES = [
    "a",
    "a/b",
    "a-b",
    "a--b",
    "a_b",
    "a__b",
    "a.b",
    "a.b/c-d_e",
    "0",
    "library/ubuntu",
    "a/b/c/d/e",
    "blobs",  # a top-level repository may take a layout entry's name: the root is no layout
    "index.json",
    "a/blobs0",
    "a/my-blobs",
    "a" * MAX_NAME_LENGTH,
    "/".join(["ab"] * 85),  # 254 characters
]

INVALID_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("A", id="uppercase"),
    pytest.param("a/B", id="uppercase-component"),
    pytest.param("-a", id="leading-dash"),
    pytest.param("a-", id="trailing-dash"),
    pytest.param(".a", id="leading-dot"),
    pytest.param("a.", id="trailing-dot"),
    pytest.param("_a", id="leading-underscore"),
    pytest.param("a_", id="trailing-underscore"),
    pytest.param("a..b", id="double-dot"),
    pytest.param("..", id="dotdot"),
    pytest.param("a/..", id="dotdot-component"),
    pytest.param("a/../b", id="dotdot-middle"),
    pytest.param("a___b", id="triple-underscore"),
    pytest.param("a._b", id="mixed-separators"),
    pytest.param("a//b", id="double-slash"),
    pytest.param("/a", id="leading-slash"),
    pytest.param("a/", id="trailing-slash"),
    pytest.param("a/-b", id="component-leading-dash"),
    pytest.param("a b", id="space"),
    pytest.param("a:b", id="colon"),
    pytest.param("a@b", id="at"),
    pytest.param("é", id="non-ascii"),
    pytest.param("a" * (MAX_NAME_LENGTH + 1), id="over-long"),
    pytest.param("a/blobs", id="nested-blobs"),
    pytest.param("a/index.json", id="nested-index-json"),
    pytest.param("a/oci-layout", id="nested-oci-layout"),
    pytest.param("a/b/blobs", id="deep-blobs"),
    pytest.param("a/blobs/c", id="blobs-in-the-middle"),
    pytest.param("a/.uploads", id="uploads"),
    pytest.param("_zotpy", id="private-dir"),
    pytest.param("a\x00", id="nul"),
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)
    assert check_name(name) == name


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(NameInvalid) as info:
        check_name(name)
    assert info.value.code == "NAME_INVALID"
    assert info.value.http_status == 400


@pytest.mark.parametrize("name", ["a\n", "a/b\n"])
def test_name_with_trailing_newline_is_invalid(name: str) -> None:
    assert not is_valid_name(name)


def test_check_name_clips_detail() -> None:
    with pytest.raises(NameInvalid) as info:
        check_name("A" * 10_000)
    assert len(info.value.detail["name"]) <= 300


VALID_TAGS = ["latest", "v1.0.0", "1", "_", "_x", "A", "Latest-RC_1.2", "a" * 128, "0" * 128, "x..y", "x--"]

INVALID_TAGS = [
    pytest.param("", id="empty"),
    pytest.param("a" * 129, id="129-chars"),
    pytest.param(".a", id="leading-dot"),
    pytest.param("-a", id="leading-dash"),
    pytest.param("a/b", id="slash"),
    pytest.param("a:b", id="colon"),
    pytest.param("a b", id="space"),
    pytest.param("a+b", id="plus"),
    pytest.param("é", id="non-ascii"),
    pytest.param("sha256:" + "a" * 64, id="digest"),
]


@pytest.mark.parametrize("tag", VALID_TAGS)
def test_valid_tags(tag: str) -> None:
    assert is_valid_tag(tag)
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", INVALID_TAGS)
def test_invalid_tags(tag: str) -> None:
    assert not is_valid_tag(tag)
    with pytest.raises(ManifestInvalid) as info:
        check_tag(tag)
    assert info.value.code == "MANIFEST_INVALID"


def test_tag_with_trailing_newline_is_invalid() -> None:
    assert not is_valid_tag("latest\n")
