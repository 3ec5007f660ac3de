"""Retention policies (``storage.retention``): which tags and untagged manifests a repository keeps.

Pure decisions over index entries and push/pull statistics, as zot's policy manager makes them: the
first policy whose ``repositories`` glob matches applies; a tag goes to the first ``keepTags`` entry
whose ``patterns`` match it (regular expressions searched anywhere in the tag, none = every tag) and is
kept when any rule of that entry holds (an entry without rules keeps every tag it matches); tags no
entry matches are deleted. Statistics come from the metadata database, injected; a tag without them is
kept, since nothing says it is stale.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

RULE_KEYS = ("pulledWithin", "pushedWithin", "mostRecentlyPushedCount", "mostRecentlyPulledCount")


@dataclass(frozen=True)
class ManifestStats:
    """Push and pull statistics of one manifest in one repository."""

    pushed: float | None = None
    last_pull: float | None = None
    downloads: int = 0


@dataclass(frozen=True)
class Policy:
    """The policy that applies to one repository."""

    delete_referrers: bool = False
    delete_untagged: bool = True
    keep_tags: tuple[Mapping[str, Any], ...] | None = None  # None: keep every tag
    keep_untagged: Mapping[str, Any] | None = None


DEFAULT_POLICY = Policy()
"""Without ``storage.retention``: untagged manifests go, referrers and tags stay (zot's default)."""

KEEP_ALL = Policy(delete_untagged=False)
"""A repository no configured policy matches: nothing is deleted."""


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A repository glob as a regex: ``*`` one path level, ``**`` any depth (``a/**`` also matches ``a``)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def policy_for(retention: Mapping[str, Any] | None, repo: str) -> Policy:
    """The policy for ``repo``: the first matching one, the default without retention, else keep all."""
    if retention is None:
        return DEFAULT_POLICY
    for policy in retention.get("policies") or ():
        if any(glob_regex(glob).fullmatch(repo) for glob in policy.get("repositories") or ()):
            keep_tags = policy.get("keepTags")
            return Policy(
                delete_referrers=bool(policy.get("deleteReferrers", False)),
                delete_untagged=bool(policy.get("deleteUntagged", True)),
                keep_tags=tuple(keep_tags) if keep_tags else None,
                keep_untagged=policy.get("keepUntagged"),
            )
    return KEEP_ALL


def _has_rules(rules: Mapping[str, Any]) -> bool:
    return any(rules.get(key) is not None for key in RULE_KEYS)


def _kept_by_rules(items: Sequence[tuple[str, str]], rules: Mapping[str, Any],
                   stats: Mapping[str, ManifestStats], now: float) -> set[str]:
    """Names of ``items`` (name, digest) that at least one rule keeps."""
    kept: set[str] = set()
    known = [(name, stats[digest]) for name, digest in items if digest in stats]
    pulled_within, pushed_within = rules.get("pulledWithin"), rules.get("pushedWithin")
    for name, stat in known:
        if pulled_within is not None and stat.last_pull is not None and now - stat.last_pull <= pulled_within:
            kept.add(name)
        if pushed_within is not None and stat.pushed is not None and now - stat.pushed <= pushed_within:
            kept.add(name)
    pushed_count = rules.get("mostRecentlyPushedCount")
    if pushed_count:
        ranked = sorted((s for s in known if s[1].pushed is not None), key=lambda s: -(s[1].pushed or 0.0))
        kept.update(name for name, _ in ranked[:pushed_count])
    pulled_count = rules.get("mostRecentlyPulledCount")
    if pulled_count:
        ranked = sorted((s for s in known if s[1].last_pull is not None),
                        key=lambda s: -(s[1].last_pull or 0.0))
        kept.update(name for name, _ in ranked[:pulled_count])
    # Without statistics nothing says an item is stale: keep it.
    kept.update(name for name, digest in items if digest not in stats)
    return kept


def retained_tags(policy: Policy, tags: Mapping[str, str], stats: Mapping[str, ManifestStats],
                  now: float) -> set[str]:
    """The tags (tag → digest) ``policy`` keeps."""
    if policy.keep_tags is None:
        return set(tags)
    groups: list[list[tuple[str, str]]] = [[] for _ in policy.keep_tags]
    for tag, digest in sorted(tags.items()):
        for position, entry in enumerate(policy.keep_tags):
            patterns = entry.get("patterns") or ()
            if not patterns or any(re.search(p, tag) for p in patterns):
                groups[position].append((tag, digest))
                break
    kept: set[str] = set()
    for entry, members in zip(policy.keep_tags, groups, strict=True):
        if not _has_rules(entry):
            kept.update(tag for tag, _ in members)
        else:
            kept |= _kept_by_rules(members, entry, stats, now)
    return kept


def retained_untagged(policy: Policy, digests: Sequence[str], stats: Mapping[str, ManifestStats],
                      now: float) -> set[str]:
    """The untagged manifests ``keepUntagged`` keeps (none when it has no rules)."""
    rules = policy.keep_untagged
    if not rules or not _has_rules(rules):
        return set()
    return _kept_by_rules([(d, d) for d in digests], rules, stats, now)
