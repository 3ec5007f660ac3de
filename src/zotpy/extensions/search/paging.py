"""PageInput, SortCriteria and Filter with zot's rules: a page of a sorted list, and its PageInfo."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import GraphQLError

from zotpy.extensions.search.catalog import Image, RepoEntry

T = TypeVar("T")

RELEVANCE = "RELEVANCE"
UPDATE_TIME = "UPDATE_TIME"
ALPHABETIC_ASC = "ALPHABETIC_ASC"
ALPHABETIC_DSC = "ALPHABETIC_DSC"
STARS = "STARS"
DOWNLOADS = "DOWNLOADS"

IMAGE_SORTS = frozenset({RELEVANCE, UPDATE_TIME, ALPHABETIC_ASC, ALPHABETIC_DSC, DOWNLOADS})
REPO_SORTS = frozenset({RELEVANCE, UPDATE_TIME, ALPHABETIC_ASC, ALPHABETIC_DSC, STARS, DOWNLOADS})


@dataclass(frozen=True)
class Page:
    limit: int = 0
    offset: int = 0
    sort: str = RELEVANCE


def page_input(value: Mapping[str, Any] | None, allowed: frozenset[str], kind: str,
               default: str = RELEVANCE) -> Page:
    """Validate ``requestedPage``: no negative numbers, a sort order this kind of result supports.

    Without ``sortBy`` each query has zot's default order: RELEVANCE for ImageList, GlobalSearch
    and ImageListForDigest, UPDATE_TIME for repository lists and base/derived image lists.
    """
    value = value or {}
    limit = value.get("limit") or 0
    offset = value.get("offset") or 0
    sort = value.get("sortBy") or default
    if limit < 0:
        raise GraphQLError("requestedPage.limit must not be negative")
    if offset < 0:
        raise GraphQLError("requestedPage.offset must not be negative")
    if sort not in allowed:
        raise GraphQLError(f"sorting {kind} by {sort} is not supported")
    return Page(limit, offset, sort)


def paginate(items: Sequence[T], page: Page) -> tuple[list[T], dict[str, int]]:
    """The page and its PageInfo; limit 0 at offset 0 means everything (zot's rule)."""
    total = len(items)
    if page.limit == 0 and page.offset == 0:
        chosen = list(items)
    else:
        chosen = list(items[page.offset:page.offset + page.limit])
    return chosen, {"TotalCount": total, "ItemCount": len(chosen)}


def sort_images(images: list[Image], sort: str) -> list[Image]:
    if sort in (RELEVANCE, ALPHABETIC_ASC):
        return sorted(images, key=lambda i: (i.repo, i.tag))
    if sort == ALPHABETIC_DSC:
        return sorted(images, key=lambda i: (i.repo, i.tag), reverse=True)
    if sort == DOWNLOADS:
        return sorted(images, key=lambda i: (-i.downloads, i.repo, i.tag))
    newest: dict[str, float] = {}
    for image in images:
        newest[image.repo] = max(newest.get(image.repo, 0.0), image.last_updated or 0.0)
    # Repositories with the newest image first, then newest images first within each.
    return sorted(images, key=lambda i: (-newest[i.repo], i.repo, -(i.last_updated or 0.0), i.tag))


def sort_repos(repos: list[RepoEntry], sort: str) -> list[RepoEntry]:
    keys: dict[str, Callable[[RepoEntry], Any]] = {
        # Equal ranks: the closer match (fewer characters besides the query) first.
        RELEVANCE: lambda r: (r.rank, len(r.name), r.name),
        ALPHABETIC_ASC: lambda r: r.name,
        UPDATE_TIME: lambda r: (-r.last_updated, r.name),
        STARS: lambda r: (-r.stars, r.name),
        DOWNLOADS: lambda r: (-r.downloads, r.name),
    }
    if sort == ALPHABETIC_DSC:
        return sorted(repos, key=lambda r: r.name, reverse=True)
    return sorted(repos, key=keys[sort])


@dataclass(frozen=True)
class Filter:
    """GraphQL ``Filter``: every given condition must hold."""

    os: frozenset[str] | None = None
    arch: frozenset[str] | None = None
    signed: bool | None = None
    bookmarked: bool | None = None
    starred: bool | None = None

    @classmethod
    def parse(cls, value: Mapping[str, Any] | None) -> Filter:
        value = value or {}

        def words(key: str) -> frozenset[str] | None:
            items = [v.strip().lower() for v in value.get(key) or [] if isinstance(v, str) and v.strip()]
            return frozenset(items) or None

        return cls(words("Os"), words("Arch"), value.get("HasToBeSigned"), value.get("IsBookmarked"),
                   value.get("IsStarred"))

    @property
    def has_platform(self) -> bool:
        return self.os is not None or self.arch is not None

    def platform_ok(self, platforms: Sequence[tuple[str | None, str | None]]) -> bool:
        if self.os is None and self.arch is None:
            return True
        for os_name, arch in platforms:
            os_ok = self.os is None or (os_name or "").lower() in self.os
            full = (arch or "").lower()
            arch_ok = self.arch is None or full in self.arch or full.split("/", 1)[0] in self.arch
            if os_ok and arch_ok:
                return True
        return False

    def user_ok(self, repo: str, starred: set[str], bookmarked: set[str]) -> bool:
        if self.starred is not None and (repo in starred) != self.starred:
            return False
        return self.bookmarked is None or (repo in bookmarked) == self.bookmarked

    def image_ok(self, image: Image, starred: set[str], bookmarked: set[str]) -> bool:
        if self.signed and not image.signed:
            return False
        return self.platform_ok(image.platforms) and self.user_ok(image.repo, starred, bookmarked)
