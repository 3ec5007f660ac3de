"""Resolvers of the search API's queries, answering from the metadata database.

Every query sees only repositories the caller may read (``Access.can_read``); arguments are checked
first (strings of at most 256 characters, pages without negative numbers).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ariadne import ObjectType, QueryType, ScalarType
from graphql import GraphQLError, GraphQLResolveInfo

from zotpy.extensions.search.catalog import Catalog, Image, SharedCache
from zotpy.extensions.search.paging import (
    IMAGE_SORTS,
    RELEVANCE,
    REPO_SORTS,
    UPDATE_TIME,
    Filter,
    page_input,
    paginate,
    sort_images,
    sort_repos,
)
from zotpy.meta.store import MetaStore, loads
from zotpy.oci.digest import Digest

MAX_ARGUMENT_LENGTH = 256
NO_SCANNING = "vulnerability scanning is not enabled"

__all__ = ["MAX_ARGUMENT_LENGTH", "NO_SCANNING", "SearchContext", "bindables", "rank_repo_name"]


@dataclass
class SearchContext:
    """What a request's resolvers use: the database and the caller's permissions."""

    meta: MetaStore
    identity: Any
    can_read: Callable[[Any, str], bool]
    can_delete: Callable[[Any, str], bool]
    shared: SharedCache = field(default_factory=SharedCache)

    def readable(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if self.can_read(self.identity, name)]

    def user_repos(self, kind: str) -> set[str]:
        if self.identity is None:
            return set()
        return self.meta.user_repos(str(self.identity), kind)

    def catalog(self, repos: Iterable[str] | None = None) -> Catalog:
        """A catalog of ``repos`` (every readable repository by default)."""
        if repos is None:
            every = list(self.meta.repos().values())
            readable = self.readable(every)
            scope: list[str] | None = None if len(readable) == len(every) else readable
        else:
            scope = self.readable(repos)
        return Catalog(self.meta, scope, can_delete=lambda repo: self.can_delete(self.identity, repo),
                       starred=self.user_repos("star"), bookmarked=self.user_repos("bookmark"),
                       shared=self.shared)


def _context(info: GraphQLResolveInfo) -> SearchContext:
    return info.context["search"]


def _check_arguments(value: Any, path: str = "") -> None:
    if isinstance(value, str) and len(value) > MAX_ARGUMENT_LENGTH:
        raise GraphQLError(f"argument {path} is longer than {MAX_ARGUMENT_LENGTH} characters")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_arguments(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            _check_arguments(item, path)


def _checked(resolver: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(resolver)
    def wrapper(obj: Any, info: GraphQLResolveInfo, **kwargs: Any) -> Any:
        _check_arguments(kwargs)
        return resolver(obj, info, **kwargs)

    return wrapper


def _no_scanning(*_args: Any, **_kwargs: Any) -> Any:
    raise GraphQLError(NO_SCANNING)


def rank_repo_name(query: str, name: str) -> int:
    """zot's rank of repository ``name`` for a name search (lower is better; -1: no match).

    0 for the whole name; a one-component query found in the last path component ranks its
    position + 1, in the first component ten times that; a query with ``/`` whose leading
    components match the name's ranks the position of its last component in the name's last;
    then a prefix of the name ranks 10, and the query anywhere in the name (position + 1) × 100.
    """
    query = query.strip("/")
    wanted = query.split("/")
    parts = name.split("/")
    if len(wanted) > len(parts):
        return -1
    if query == name:
        return 0
    if len(wanted) == 1:
        index = parts[-1].find(query)
        if index != -1:
            return index + 1
        index = parts[0].find(query)
        if index != -1:
            return (index + 1) * 10
    if wanted[:-1] == parts[:len(wanted) - 1]:
        index = parts[-1].find(wanted[-1])
        if index != -1:
            return index + 1
    if name.startswith(query):
        return 10
    index = name.find(query)
    return (index + 1) * 100 if index != -1 else -1


def _images_page(catalog: Catalog, images: list[Image], requested: Mapping[str, Any] | None,
                 default: str = RELEVANCE) -> dict[str, Any]:
    page = page_input(requested, IMAGE_SORTS, "images", default)
    chosen, info = paginate(sort_images(images, page.sort), page)
    return {"Page": info, "Results": catalog.summaries(chosen)}


def _filtered(images: list[Image], flt: Filter, catalog: Catalog) -> list[Image]:
    return [i for i in images if flt.image_ok(i, catalog.starred, catalog.bookmarked)]


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    """``repo:tag`` or ``repo@digest`` → (repo, tag, digest)."""
    if "@" in image:
        repo, _, digest = image.partition("@")
        return repo, None, digest
    repo, sep, tag = image.rpartition(":")
    if not sep or not repo or not tag or "/" in tag:
        raise GraphQLError(f"image must be given as repo:tag, not {image!r}")
    return repo, tag, None


def _find_image(ctx: SearchContext, image: str) -> tuple[Catalog, Image]:
    repo, tag, digest = _split_image(image)
    catalog = ctx.catalog([repo])
    rows = [row for row in catalog.tags if (row[1] == tag if tag is not None else row[2] == digest)]
    found = catalog.images(rows[:1])
    if not found:
        raise GraphQLError(f"image not found: {image}")
    return catalog, found[0]


def _layer_lists(catalog: Catalog, image: Image, digest: str | None) -> list[tuple[str, list[str]]]:
    """(manifest digest, layer digests) of the image's manifests (only ``digest`` when given)."""
    out = []
    for manifest in [c["digest"] for c in image.children] or [image.digest]:
        if digest is not None and manifest != digest:
            continue
        layers = catalog.layers(manifest)
        if layers:
            out.append((manifest, [layer[0] for layer in layers]))
    if digest is not None and not out:
        raise GraphQLError(f"digest {digest} is not a manifest of the image")
    return out


def _images_for_digests(ctx: SearchContext, digests: set[str]) -> tuple[Catalog, list[Image]]:
    """Tagged images whose digest, or a child manifest's digest, is in ``digests``."""
    meta = ctx.meta
    parents = meta.parents(sorted(digests))
    wanted = digests | {p for found in parents.values() for p in found}
    rows = meta.tags_for_digests(sorted(wanted)) if wanted else []
    repo_names = meta.repos()
    catalog = ctx.catalog(sorted({repo_names[row[0]] for row in rows if row[0] in repo_names}))
    rows = [row for row in rows if row[0] in catalog.repos]
    return catalog, catalog.images(rows)


query = QueryType()


@query.field("ImageList")
@_checked
def resolve_image_list(_obj: Any, info: GraphQLResolveInfo, repo: str,
                       requestedPage: Mapping[str, Any] | None = None) -> dict[str, Any]:
    ctx = _context(info)
    page_input(requestedPage, IMAGE_SORTS, "images")
    catalog = ctx.catalog(None if repo == "" else [repo])
    return _images_page(catalog, catalog.images(), requestedPage)


@query.field("ExpandedRepoInfo")
@_checked
def resolve_expanded_repo_info(_obj: Any, info: GraphQLResolveInfo, repo: str) -> dict[str, Any]:
    ctx = _context(info)
    catalog = ctx.catalog([repo])
    if repo not in catalog.ids:
        raise GraphQLError(f"repository not found: {repo}")
    entry = catalog.repo_entries().get(repo)
    if entry is None:
        summary = {"Name": repo, "Platforms": [], "Vendors": [], "StarCount": 0, "DownloadCount": 0,
                   "Size": "0", "IsStarred": False, "IsBookmarked": False, "Rank": 0}
        return {"Summary": summary, "Images": []}
    # zot lists a repository's images newest first.
    images = catalog.summaries(sorted(entry.images, key=lambda i: (-(i.last_updated or 0.0), i.tag)))
    return {"Summary": catalog.repo_summaries([entry])[0], "Images": images}


@query.field("GlobalSearch")
@_checked
def resolve_global_search(_obj: Any, info: GraphQLResolveInfo, query: str,
                          filter: Mapping[str, Any] | None = None,
                          requestedPage: Mapping[str, Any] | None = None) -> dict[str, Any]:
    ctx = _context(info)
    text = query.strip().strip("/").strip().lower()
    flt = Filter.parse(filter)
    if not any(c in text for c in ":@"):
        return _search_repos(ctx, text, flt, requestedPage)
    page_input(requestedPage, IMAGE_SORTS, "images")
    if text.startswith(("sha256:", "sha512:")):
        catalog, images = _images_for_digests(ctx, _digest_matches(ctx.meta, text))
    elif ":" in text and "@" not in text:
        repo, _, tag = text.partition(":")
        if not repo and not tag:
            raise GraphQLError(f"invalid search query: {query!r}")
        if repo:
            catalog = ctx.catalog([repo])
            images = catalog.images(r for r in catalog.tags if r[1].lower().startswith(tag))
        else:
            catalog = ctx.catalog()
            images = catalog.images(r for r in catalog.tags if tag in r[1].lower())
    else:
        raise GraphQLError(f"invalid search query: {query!r}")
    result = _images_page(catalog, _filtered(images, flt, catalog), requestedPage)
    return {"Page": result["Page"], "Images": result["Results"], "Repos": [], "Layers": []}


def _digest_matches(meta: MetaStore, text: str) -> set[str]:
    """Manifests whose digest starts with ``text``; a whole digest also finds its users (config, layer)."""
    found = set(meta.digests_with_prefix(text))
    if len(text.partition(":")[2]) >= 64:
        found |= set(meta.images_with_config(text)) | set(meta.images_with_layer(text))
    return found


def _search_repos(ctx: SearchContext, text: str, flt: Filter,
                  requested: Mapping[str, Any] | None) -> dict[str, Any]:
    page = page_input(requested, REPO_SORTS, "repositories")
    names = ctx.readable(ctx.meta.repos().values())
    ranks = {name: rank for name in names if (rank := rank_repo_name(text, name)) != -1}
    catalog = ctx.catalog()  # the shared list of every tag, then only the matching repositories
    repos = []
    for name, entry in catalog.repo_entries(catalog.images(r for r in catalog.tags
                                                           if catalog.repos.get(r[0]) in ranks)).items():
        if not flt.user_ok(name, catalog.starred, catalog.bookmarked):
            continue
        if flt.signed and not entry.signed:
            continue
        if flt.has_platform and not flt.platform_ok(entry.platforms):
            continue
        entry.rank = ranks[name]
        repos.append(entry)
    chosen, page_info = paginate(sort_repos(repos, page.sort), page)
    return {"Page": page_info, "Repos": catalog.repo_summaries(chosen), "Images": [], "Layers": []}


def _repos_page(catalog: Catalog, requested: Mapping[str, Any] | None,
                keep: Callable[[str], bool] = lambda name: True) -> dict[str, Any]:
    page = page_input(requested, REPO_SORTS, "repositories", UPDATE_TIME)
    repos = [entry for name, entry in catalog.repo_entries().items() if keep(name)]
    chosen, page_info = paginate(sort_repos(repos, page.sort), page)
    return {"Page": page_info, "Results": catalog.repo_summaries(chosen)}


@query.field("RepoListWithNewestImage")
@_checked
def resolve_repo_list(_obj: Any, info: GraphQLResolveInfo,
                      requestedPage: Mapping[str, Any] | None = None) -> dict[str, Any]:
    page_input(requestedPage, REPO_SORTS, "repositories")
    return _repos_page(_context(info).catalog(), requestedPage)


def _user_repos(kind: str) -> Callable[..., dict[str, Any]]:
    def resolve(_obj: Any, info: GraphQLResolveInfo, requestedPage: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
        ctx = _context(info)
        page_input(requestedPage, REPO_SORTS, "repositories")
        chosen = ctx.user_repos(kind)
        if not chosen:
            return {"Page": {"TotalCount": 0, "ItemCount": 0}, "Results": []}
        return _repos_page(ctx.catalog(sorted(chosen)), requestedPage)

    return _checked(resolve)


query.set_field("StarredRepos", _user_repos("star"))
query.set_field("BookmarkedRepos", _user_repos("bookmark"))


@query.field("Image")
@_checked
def resolve_image(_obj: Any, info: GraphQLResolveInfo, image: str) -> dict[str, Any]:
    return _find_image(_context(info), image)[1].summary


@query.field("ImageListForDigest")
@_checked
def resolve_image_list_for_digest(_obj: Any, info: GraphQLResolveInfo, id: str,
                                  requestedPage: Mapping[str, Any] | None = None) -> dict[str, Any]:
    ctx = _context(info)
    page_input(requestedPage, IMAGE_SORTS, "images")
    wanted = id.strip().lower()
    digests = set(ctx.meta.images_with_config(wanted)) | set(ctx.meta.images_with_layer(wanted))
    digests |= ctx.meta.known_images([wanted])  # the manifest itself (or a platform manifest of an index)
    catalog, images = _images_for_digests(ctx, digests)
    return _images_page(catalog, images, requestedPage)


def _related(kind: str) -> Callable[..., dict[str, Any]]:
    """DerivedImageList (images whose layers start with this image's) or BaseImageList (the reverse)."""

    def resolve(_obj: Any, info: GraphQLResolveInfo, image: str, digest: str | None = None,
                requestedPage: Mapping[str, Any] | None = None) -> dict[str, Any]:
        ctx = _context(info)
        page_input(requestedPage, IMAGE_SORTS, "images")
        catalog, found = _find_image(ctx, image)
        matches: set[str] = set()
        for own, layers in _layer_lists(catalog, found, digest):
            for candidate, row in ctx.meta.images_with_first_layer(layers[0]).items():
                if candidate == own:
                    continue
                theirs = [layer[0] for layer in loads(row.get("layers"), [])]
                prefix, whole = (layers, theirs) if kind == "derived" else (theirs, layers)
                if whole[:len(prefix)] == prefix:
                    matches.add(candidate)
        related, images = _images_for_digests(ctx, matches)
        images = [i for i in images if not (i.repo == found.repo and i.tag == found.tag)]
        return _images_page(related, images, requestedPage, UPDATE_TIME)

    return _checked(resolve)


query.set_field("DerivedImageList", _related("derived"))
query.set_field("BaseImageList", _related("base"))


@query.field("Referrers")
@_checked
def resolve_referrers(_obj: Any, info: GraphQLResolveInfo, repo: str, digest: str,
                      type: list[str] | None = None) -> list[dict[str, Any]]:
    ctx = _context(info)
    try:
        subject = str(Digest.parse(digest))
    except Exception:
        raise GraphQLError(f"invalid digest: {digest}") from None
    if not ctx.can_read(ctx.identity, repo):
        return []
    ids = ctx.meta.repos([repo])
    if not ids:
        return []
    found = ctx.meta.referrers(list(ids), [subject]).get((next(iter(ids)), subject), [])
    if type:
        found = [r for r in found if r["ArtifactType"] in set(type)]
    return found


for _name in ("CVEListForImage", "CVEDiffListForImages", "ImageListForCVE", "ImageListWithCVEFixed"):
    query.set_field(_name, _checked(_no_scanning))

image_summary = ObjectType("ImageSummary")
image_summary.set_field("Vulnerabilities", _no_scanning)
manifest_summary = ObjectType("ManifestSummary")
manifest_summary.set_field("Vulnerabilities", _no_scanning)

time_scalar = ScalarType("Time")


@time_scalar.serializer
def serialize_time(value: Any) -> str:
    text = value.isoformat().replace("+00:00", "Z")
    return str(text)


def bindables() -> list[Any]:
    return [query, image_summary, manifest_summary, time_scalar]

