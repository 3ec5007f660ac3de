"""A read-only view of one repository derived from its index.json.

Views are cached per process and keyed by the identity of index.json (inode, mtime,
size), so every worker sees a write as soon as the atomic rename lands. Parts that
need the manifests themselves (children of indexes, referrers, referenced blobs) are
computed on first use; parsed manifests are cached by digest since they never change.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable
from functools import cached_property
from typing import Any

from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Manifest, parse_stored
from zotpy.storage.layout import tag_of

ManifestLoader = Callable[[str, str], Manifest | None]  # (digest, media type) -> manifest or None


class RepoView:
    """Tags, manifests and referrers of one repository at one version of its index.json."""

    def __init__(self, entries: list[dict[str, Any]], load: ManifestLoader) -> None:
        self.entries = [e for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)]
        self._load = load

    @cached_property
    def tags(self) -> dict[str, dict[str, Any]]:
        """tag → index entry (the first entry wins if a hand-written layout repeats a tag)."""
        out: dict[str, dict[str, Any]] = {}
        for entry in self.entries:
            tag = tag_of(entry)
            if tag is not None:
                out.setdefault(tag, entry)
        return out

    @cached_property
    def sorted_tags(self) -> list[str]:
        return sorted(self.tags)

    def tag_page(self, last: str | None, limit: int | None) -> tuple[list[str], bool]:
        """Tags after ``last`` (sorted), at most ``limit``; and whether more follow."""
        start = bisect.bisect_right(self.sorted_tags, last) if last is not None else 0
        if limit is None:
            return self.sorted_tags[start:], False
        page = self.sorted_tags[start:start + limit]
        return page, start + limit < len(self.sorted_tags)

    @cached_property
    def top_level(self) -> dict[str, dict[str, Any]]:
        """digest → first index entry with that digest."""
        out: dict[str, dict[str, Any]] = {}
        for entry in self.entries:
            out.setdefault(entry["digest"], entry)
        return out

    def manifest(self, digest: str) -> Manifest | None:
        """The parsed manifest of a digest known to this view, or None."""
        entry = self.top_level.get(digest) or self.children.get(digest)
        if entry is None:
            return None
        return self._load(digest, entry.get("mediaType", ""))

    def _walk(self) -> list[tuple[dict[str, Any], Manifest]]:
        """Every manifest reachable from index.json, children of indexes included."""
        seen: set[str] = set()
        out: list[tuple[dict[str, Any], Manifest]] = []
        stack = list(self.entries)
        while stack:
            entry = stack.pop()
            digest = entry.get("digest")
            if not isinstance(digest, str) or digest in seen:
                continue
            seen.add(digest)
            manifest = self._load(digest, entry.get("mediaType", ""))
            if manifest is None:
                continue
            out.append((entry, manifest))
            stack.extend(d.to_json() for d in manifest.manifests)
        return out

    @cached_property
    def _all(self) -> list[tuple[dict[str, Any], Manifest]]:
        return self._walk()

    @cached_property
    def children(self) -> dict[str, dict[str, Any]]:
        """digest → descriptor of manifests referenced by an index in this repository."""
        out: dict[str, dict[str, Any]] = {}
        if not any(entry.get("mediaType") in mt.INDEX_TYPES for entry in self.entries):
            return out
        for _, manifest in self._all:
            for child in manifest.manifests:
                out.setdefault(str(child.digest), child.to_json())
        return out

    def is_child(self, digest: str) -> bool:
        return digest in self.children

    @cached_property
    def referenced_blobs(self) -> set[str]:
        """Digests of every config, layer and child manifest referenced by a manifest here."""
        out: set[str] = set()
        for _, manifest in self._all:
            out.update(str(d.digest) for d in manifest.blobs())
            out.update(str(d.digest) for d in manifest.manifests)
        return out

    @cached_property
    def _referrers(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for entry, manifest in self._all:
            if manifest.subject is None:
                continue
            descriptor: dict[str, Any] = {"mediaType": manifest.media_type, "digest": entry["digest"],
                                          "size": len(manifest.raw)}
            if manifest.referrer_artifact_type:
                descriptor["artifactType"] = manifest.referrer_artifact_type
            if manifest.annotations:
                descriptor["annotations"] = dict(manifest.annotations)
            out.setdefault(str(manifest.subject.digest), []).append(descriptor)
        for found in out.values():
            found.sort(key=lambda d: d["digest"])
        return out

    def referrers(self, subject: Digest) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is ``subject``."""
        return list(self._referrers.get(str(subject), ()))


class ManifestCache:
    """Parsed manifests by digest; content is immutable so entries never go stale."""

    def __init__(self, capacity: int = 20000) -> None:
        self._items: OrderedDict[str, Manifest] = OrderedDict()
        self.capacity = capacity

    def get(self, digest: str, media_type: str, read: Callable[[], bytes]) -> Manifest | None:
        cached = self._items.get(digest)
        if cached is not None:
            self._items.move_to_end(digest)
            return cached
        try:
            manifest = parse_stored(read(), media_type)
        except Exception:  # a missing or unreadable manifest is simply not part of the view
            return None
        self._items[digest] = manifest
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return manifest

