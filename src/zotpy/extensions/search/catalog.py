"""Builds the search API's ImageSummary and RepoSummary values from the metadata database.

A :class:`Catalog` belongs to one request.  It loads rows in a few bulk queries (never one per
image) and in two steps: the small columns every image needs to be filtered and sorted, then the
JSON columns (annotations, labels, layers, history) only for the images a page actually returns.
Expensive fields (layers, history, referrers, a repository's size) are callables that GraphQL
only calls when the query asks for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from zotpy.meta.store import MetaStore, loads

ANNOTATION_FIELDS = {
    "Description": "org.opencontainers.image.description",
    "Licenses": "org.opencontainers.image.licenses",
    "Title": "org.opencontainers.image.title",
    "Source": "org.opencontainers.image.source",
    "Documentation": "org.opencontainers.image.documentation",
    "Vendor": "org.opencontainers.image.vendor",
    "Authors": "org.opencontainers.image.authors",
}
LIGHT_COLUMNS = ("digest", "media_type", "size", "total_size", "config_digest", "config_media_type",
                 "config_size", "artifact_type", "os", "arch", "variant", "created", "vendor", "children")
HEAVY_COLUMNS = ("digest", "annotations", "labels", "layers", "history")
LIGHT_CACHE_ROWS = 500_000
"""Image rows kept per process (a few hundred bytes each); the cache starts over beyond this."""

T = TypeVar("T")
TagRow = tuple[int, str, str, str, float]  # repo id, tag, digest, media type, tagged time
Platform = tuple[str | None, str | None]


class once(Generic[T]):
    """``functools.cached_property`` without its per-access lock (costly over thousands of images)."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__

    def __get__(self, obj: Any, owner: Any = None) -> T:
        value = self.compute(obj)
        obj.__dict__[self.name] = value
        return value


def to_time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def _lazy(compute: Callable[[], Any]) -> Callable[..., Any]:
    """A field value GraphQL computes only when the query selects the field."""
    return lambda *_args, **_kwargs: compute()


class Image:
    """One tagged image: what filters and sorts need (computed on first use), and its summary."""

    def __init__(self, catalog: Catalog, repo_id: int, tag: str, digest: str, media_type: str,
                 tagged: float) -> None:
        self.catalog = catalog
        self.repo_id = repo_id
        self.repo = catalog.repos[repo_id]
        self.tag = tag
        self.digest = digest
        self.media_type = media_type
        self.tagged = tagged

    @once
    def row(self) -> dict[str, Any]:
        return self.catalog.light[self.digest]

    @once
    def children(self) -> list[dict[str, Any]]:
        children = self.row["_children"]
        return [c for c in children if c["digest"] in self.catalog.light] if children else []

    @once
    def _manifests(self) -> list[dict[str, Any]]:
        return [self.catalog.light[c["digest"]] for c in self.children] if self.children else [self.row]

    @once
    def last_updated(self) -> float | None:
        row = self.catalog.light[self.digest]
        if not row["_children"]:
            return row["created"]
        created = [m["created"] for m in self._manifests if m["created"] is not None]
        return max(created) if created else None

    @once
    def platforms(self) -> list[Platform]:
        descriptors = [c.get("platform") for c in self.children] or [None]
        return [_platform(m, d) for m, d in zip(self._manifests, descriptors, strict=False)]

    @once
    def vendor(self) -> str | None:
        return self.row["vendor"] or (self._manifests[0]["vendor"] if self.children else None)

    @once
    def downloads(self) -> int:
        stats = self.catalog.stats.get((self.repo_id, self.digest))
        return stats[2] if stats else 0

    @once
    def signed(self) -> bool:
        return (self.repo_id, self.digest) in self.catalog.signatures

    def digests(self) -> list[str]:
        return [self.digest, *(c["digest"] for c in self.children)]

    @once
    def summary(self) -> dict[str, Any]:
        return self.catalog.image_summary(self)

    @once
    def annotation_values(self) -> dict[str, str | None]:
        return self.catalog.annotation_values(self)


class RepoEntry:
    """A repository with its images; figures and summary computed on first use."""

    def __init__(self, catalog: Catalog, repo_id: int, images: list[Image]) -> None:
        self.catalog = catalog
        self.repo_id = repo_id
        self.name = catalog.repos[repo_id]
        self.images = images
        self.rank = 0

    @once
    def newest(self) -> Image:
        return max(self.images, key=lambda i: (i.last_updated or 0.0, i.tagged, i.tag))

    @once
    def last_updated(self) -> float:
        return self.newest.last_updated or 0.0

    @once
    def downloads(self) -> int:
        return self.catalog.repo_downloads.get(self.repo_id, 0)

    @once
    def stars(self) -> int:
        return self.catalog.star_counts.get(self.name, 0)

    @once
    def platforms(self) -> list[Platform]:
        return list(dict.fromkeys(p for i in self.images for p in i.platforms if p[0] or p[1]))

    @once
    def vendors(self) -> list[str]:
        return list(dict.fromkeys(i.vendor for i in self.images if i.vendor))

    @once
    def signed(self) -> bool:
        return any(i.signed for i in self.images)

    @once
    def summary(self) -> dict[str, Any]:
        return {
            "Name": self.name, "LastUpdated": to_time(self.newest.last_updated),
            "Size": _lazy(lambda: str(self.catalog.repo_size(self))),
            "Platforms": [{"Os": os_name, "Arch": arch} for os_name, arch in self.platforms],
            "Vendors": self.vendors, "NewestImage": _lazy(lambda: self.newest.summary),
            "DownloadCount": self.downloads, "StarCount": self.stars,
            "IsBookmarked": self.name in self.catalog.bookmarked,
            "IsStarred": self.name in self.catalog.starred,
            "Rank": self.rank,
        }


class SharedCache:
    """What requests of one process share: immutable image rows, and the list of every repository and
    tag as of the database's current generation (re-read only after a push or delete)."""

    def __init__(self) -> None:
        self.light: dict[str, dict[str, Any]] = {}
        self.generation: str | None = None
        self.repos: dict[int, str] = {}
        self.tags: list[TagRow] = []

    def snapshot(self, meta: MetaStore) -> tuple[dict[int, str], list[TagRow]]:
        generation = meta.generation()
        if generation is None or generation != self.generation:
            self.repos, self.tags = meta.repos(), meta.tags()
            self.generation = generation
        return self.repos, self.tags


class Catalog:
    """The metadata of some repositories (or all), loaded in bulk on first use."""

    def __init__(self, meta: MetaStore, repos: Sequence[str] | None = None, *,
                 can_delete: Callable[[str], bool] = lambda repo: True,
                 starred: set[str] | None = None, bookmarked: set[str] | None = None,
                 shared: SharedCache | None = None) -> None:
        self.meta = meta
        self.shared = SharedCache() if shared is None else shared
        self.light_cache = self.shared.light
        self._all_tags: list[TagRow] | None = None
        if repos is None:
            self.repos, self._all_tags = self.shared.snapshot(meta)
        else:
            self.repos = meta.repos(repos)
        self.ids = {name: rid for rid, name in self.repos.items()}
        self._scope = None if repos is None else list(self.repos)
        self._stats: dict[tuple[int, str], tuple[float, str | None, int, float | None]] = {}
        self._stats_wanted: set[tuple[int, str]] = set()
        self.can_delete = can_delete
        self.starred = starred or set()
        self.bookmarked = bookmarked or set()
        self.light: dict[str, dict[str, Any]] = {}
        self._heavy: dict[str, dict[str, Any]] = {}
        self._wanted: set[str] = set()
        self._referrers: dict[tuple[int, str], list[dict[str, Any]]] | None = None

    # -- bulk loads ----------------------------------------------------------------------

    @once
    def tags(self) -> list[TagRow]:
        if self._all_tags is not None:
            return self._all_tags
        if not self._scope:
            return []
        return self.meta.tags(self._scope)

    @once
    def stats(self) -> dict[tuple[int, str], tuple[float, str | None, int, float | None]]:
        """Statistics of every manifest in scope (sorting by downloads needs them all)."""
        if self._scope is not None and not self._scope:
            return {}
        return self.meta.stats(self._scope)

    def stat(self, repo_id: int, digest: str) -> tuple[float, str | None, int, float | None] | None:
        """One manifest's statistics; those of a page's images are fetched together."""
        if "stats" in self.__dict__:
            return self.stats.get((repo_id, digest))
        key = (repo_id, digest)
        if key not in self._stats:
            self._stats_wanted.add(key)
            found = self.meta.stats_for(self._stats_wanted)
            for wanted in self._stats_wanted:
                self._stats[wanted] = found.get(wanted)  # type: ignore[assignment]
            self._stats_wanted = set()
        return self._stats[key]

    @once
    def repo_downloads(self) -> dict[int, int]:
        if self._scope is not None and not self._scope:
            return {}
        return self.meta.repo_downloads(self._scope)

    @once
    def signatures(self) -> dict[tuple[int, str], list[tuple[str, str]]]:
        if self._scope is not None and not self._scope:
            return {}
        return self.meta.signatures(self._scope)

    @once
    def star_counts(self) -> dict[str, int]:
        return self.meta.star_counts(None if self._scope is None else list(self.ids))

    def load_light(self, digests: Iterable[str]) -> None:
        """Load the small columns of these images and of the children of indexes among them.

        Image rows are content-addressed and never change, so they are shared by every request
        of the process through ``light_cache``.
        """
        cache = self.light_cache
        wanted = {d for d in digests if d not in self.light}
        while wanted:
            missing = [d for d in wanted if d not in cache]
            if missing:
                for digest, row in self.meta.images(missing, LIGHT_COLUMNS).items():
                    row["_children"] = loads(row.pop("children"), None)
                    cache[digest] = row
                if len(cache) > LIGHT_CACHE_ROWS:
                    cache.clear()
            found = {d: cache[d] for d in wanted if d in cache}
            self.light.update(found)
            wanted = {c["digest"] for row in found.values() for c in row["_children"] or ()
                      if c["digest"] not in self.light}

    def want(self, images: Iterable[Image]) -> None:
        """Images whose JSON columns and statistics will be needed: fetched together on first use."""
        for image in images:
            digests = image.digests()
            self._wanted.update(d for d in digests if d not in self._heavy)
            keys = ((image.repo_id, d) for d in digests)
            self._stats_wanted.update(key for key in keys if key not in self._stats)

    def heavy(self, digest: str) -> dict[str, Any]:
        if digest not in self._heavy:
            self._wanted.add(digest)
            found = self.meta.images(self._wanted, HEAVY_COLUMNS)
            self._heavy.update(found)
            for missing in self._wanted - found.keys():
                self._heavy[missing] = {"annotations": None, "labels": None, "layers": None, "history": None}
            self._wanted = set()
        return self._heavy[digest]

    def layers(self, digest: str) -> list[list[Any]]:
        return loads(self.heavy(digest)["layers"], [])

    def referrers(self, repo_id: int, subject: str) -> list[dict[str, Any]]:
        if self._referrers is None:
            self._referrers = self.meta.referrers(self._scope)
        return self._referrers.get((repo_id, subject), [])

    # -- images --------------------------------------------------------------------------

    def images(self, rows: Iterable[TagRow] | None = None) -> list[Image]:
        """One :class:`Image` per tag row (every tag in scope by default)."""
        rows = list(self.tags if rows is None else rows)
        self.load_light(row[2] for row in rows)
        return [Image(self, *row) for row in rows if row[2] in self.light and row[0] in self.repos]

    def image_summary(self, image: Image) -> dict[str, Any]:
        repo_id, digest = image.repo_id, image.digest
        row = self.light[digest]
        if image.children:
            manifests = [self.manifest_summary(repo_id, c["digest"], c.get("platform"))
                         for c in image.children]
        else:
            manifests = [self.manifest_summary(repo_id, digest, None)]
        pushed, pushed_by, downloads, last_pull = self.stat(repo_id, digest) or (image.tagged, None, 0, None)
        signatures = self.signatures.get((repo_id, digest), [])
        return {
            "RepoName": image.repo, "Tag": image.tag, "Digest": digest,
            "MediaType": image.media_type or row["media_type"], "Manifests": manifests,
            "Size": str(row["total_size"]), "DownloadCount": downloads,
            "LastPullTimestamp": to_time(last_pull), "PushTimestamp": to_time(pushed), "PushedBy": pushed_by,
            "TaggedTimestamp": to_time(image.tagged or pushed), "LastUpdated": to_time(image.last_updated),
            "IsSigned": bool(signatures), "SignatureInfo": _signature_info(signatures), "Labels": None,
            "Referrers": _lazy(lambda: self.referrers(repo_id, digest)),
            "IsDeletable": self.can_delete(image.repo),
            "ArtifactType": row["artifact_type"] or row["config_media_type"],
            # Annotation fields need the JSON columns: read only when the query selects them.
            **{name: _annotation(image, name) for name in ANNOTATION_FIELDS},
        }

    def annotation_values(self, image: Image) -> dict[str, str | None]:
        """Description, Licenses...: annotations, else config labels (an index: then its first image's)."""
        digests = [image.digest] + ([image.children[0]["digest"]] if image.children else [])
        sources = []
        for digest in digests:
            row = self.heavy(digest)
            sources += [loads(row["annotations"], {}), loads(row["labels"], {})]
        out: dict[str, str | None] = {}
        for name, key in ANNOTATION_FIELDS.items():
            out[name] = next((source[key] for source in sources if source.get(key)), None)
        return out

    def manifest_summary(self, repo_id: int, digest: str, platform: dict[str, Any] | None) -> dict[str, Any]:
        row = self.light[digest]
        os_name, arch = _platform(row, platform)
        signatures = self.signatures.get((repo_id, digest), [])
        stats = self.stat(repo_id, digest)
        return {
            "Digest": digest, "ConfigDigest": row["config_digest"], "LastUpdated": to_time(row["created"]),
            "Size": str(row["total_size"]), "IsSigned": bool(signatures),
            "SignatureInfo": _signature_info(signatures), "Platform": {"Os": os_name, "Arch": arch},
            "DownloadCount": stats[2] if stats else 0,
            "Layers": _lazy(lambda: _layers(self.layers(digest))),
            "History": _lazy(lambda: _history(self.layers(digest), loads(self.heavy(digest)["history"], []))),
            "Referrers": _lazy(lambda: self.referrers(repo_id, digest)),
            "ArtifactType": row["artifact_type"] or row["config_media_type"],
        }

    # -- repositories ----------------------------------------------------------------------

    def repo_entries(self, images: list[Image] | None = None) -> dict[str, RepoEntry]:
        """name → entry for every repository in scope with at least one tagged image."""
        images = self.images() if images is None else images
        by_repo: dict[int, list[Image]] = {}
        for image in images:
            by_repo.setdefault(image.repo_id, []).append(image)
        return {self.repos[rid]: RepoEntry(self, rid, found) for rid, found in by_repo.items()}

    def repo_size(self, entry: RepoEntry) -> int:
        """Bytes of every distinct blob (manifests, configs, layers) of the repository's tagged images."""
        blobs: dict[str, int] = {}
        for image in entry.images:
            for digest in image.digests():
                row = self.light[digest]
                blobs[digest] = row["size"]
                if row["config_digest"]:
                    blobs[row["config_digest"]] = row["config_size"] or 0
                for layer, size in self.layers(digest):
                    blobs[layer] = size
        return sum(blobs.values())

    def summaries(self, images: Sequence[Image]) -> list[dict[str, Any]]:
        """The summaries of a page of images, their JSON columns fetched in one query."""
        self.want(images)
        return [image.summary for image in images]

    def repo_summaries(self, entries: Sequence[RepoEntry]) -> list[dict[str, Any]]:
        """The summaries of a page of repositories (newest images and sizes fetched together)."""
        self.want(image for entry in entries for image in entry.images)
        return [entry.summary for entry in entries]


def _annotation(image: Image, name: str) -> Callable[..., Any]:
    return _lazy(lambda: image.annotation_values[name])


def _platform(row: dict[str, Any], descriptor: dict[str, Any] | None) -> Platform:
    """Os and Arch (with the variant: arm/v7) from the config, else from the index's descriptor."""
    descriptor = descriptor or {}
    os_name = row["os"] or descriptor.get("os")
    arch = row["arch"] or descriptor.get("architecture")
    variant = row["variant"] or descriptor.get("variant")
    return os_name, f"{arch}/{variant}" if arch and variant else arch


def _signature_info(signatures: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"Tool": tool, "IsTrusted": False, "Author": ""} for tool, _ in signatures]


def _layers(layers: list[list[Any]]) -> list[dict[str, Any]]:
    return [{"Digest": digest, "Size": str(size)} for digest, size in layers]


def _history(layers: list[list[Any]], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History entries paired with the layers they produced, in order (empty steps have none)."""
    summaries = _layers(layers)
    if not history:
        return [{"Layer": layer, "HistoryDescription": None} for layer in summaries]
    out = []
    position = 0
    for entry in history:
        description = {"Created": to_time(entry.get("created")), "CreatedBy": entry.get("created_by"),
                       "Author": entry.get("author"), "Comment": entry.get("comment"),
                       "EmptyLayer": entry.get("empty_layer", False)}
        if entry.get("empty_layer"):
            out.append({"Layer": None, "HistoryDescription": description})
            continue
        if position >= len(summaries):
            # More history than layers: the config does not describe these layers; show layers alone.
            return [{"Layer": layer, "HistoryDescription": None} for layer in summaries]
        out.append({"Layer": summaries[position], "HistoryDescription": description})
        position += 1
    return out
