"""Retention decisions (zotpy.storage.retention): policy matching and the keep rules, as zot applies them."""

from __future__ import annotations

import pytest

from zotpy.storage.retention import (
    DEFAULT_POLICY,
    KEEP_ALL,
    ManifestStats,
    glob_regex,
    policy_for,
    retained_tags,
    retained_untagged,
)

DAY = 86400.0
NOW = 1_000 * DAY


@pytest.mark.parametrize(("glob", "repo", "matches"), [
    ("infra/*", "infra/app", True),
    ("infra/*", "infra/app/sub", False),
    ("tmp/**", "tmp/a/b/c", True),
    ("tmp/**", "tmp", True),
    ("tmp/**", "tmpx/a", False),
    ("**", "anything/at/all", True),
    ("**/cache", "a/b/cache", True),
    ("**/cache", "cache", True),
    ("a?c", "abc", True),
    ("a.c", "abc", False),
])
def test_repository_globs(glob: str, repo: str, matches: bool) -> None:
    assert bool(glob_regex(glob).fullmatch(repo)) is matches


def test_first_matching_policy_wins_and_defaults() -> None:
    retention = {"policies": [
        {"repositories": ["infra/*"], "deleteReferrers": False, "deleteUntagged": False},
        {"repositories": ["**"], "deleteReferrers": True, "keepTags": [{"patterns": ["v.*"]}]},
    ]}
    assert policy_for(retention, "infra/db").delete_untagged is False
    other = policy_for(retention, "team/app")
    assert other.delete_referrers and other.delete_untagged and other.keep_tags is not None
    assert policy_for(None, "x") == DEFAULT_POLICY
    assert policy_for({"policies": [{"repositories": ["a/*"]}]}, "b/c") == KEEP_ALL


def stats_for(**by_tag: ManifestStats) -> tuple[dict[str, str], dict[str, ManifestStats]]:
    tags = {tag: f"sha256:{tag}" for tag in by_tag}
    return tags, {f"sha256:{tag}": stat for tag, stat in by_tag.items()}


def test_tags_go_to_the_first_entry_whose_patterns_match() -> None:
    policy = policy_for({"policies": [{"repositories": ["**"], "keepTags": [
        {"patterns": ["v2.*", ".*-prod"]},
        {"patterns": ["v3.*", ".*-prod"], "pulledWithin": 7 * DAY},
    ]}]}, "r")
    tags, stats = stats_for(**{
        "v2.1": ManifestStats(pushed=0.0),                          # entry 1, no rules: kept
        "v3.0-prod": ManifestStats(pushed=0.0),                     # entry 1 (first match): kept
        "v3.1": ManifestStats(pushed=0.0, last_pull=NOW - DAY),     # entry 2, pulled recently: kept
        "v3.2": ManifestStats(pushed=0.0, last_pull=NOW - 30 * DAY),  # entry 2, stale: deleted
        "v1.0": ManifestStats(pushed=NOW),                          # no entry: deleted
    })
    assert retained_tags(policy, tags, stats, NOW) == {"v2.1", "v3.0-prod", "v3.1"}


def test_most_recent_counts_and_pushed_within_are_or_ed() -> None:
    policy = policy_for({"policies": [{"repositories": ["**"], "keepTags": [
        {"mostRecentlyPushedCount": 2, "mostRecentlyPulledCount": 1, "pushedWithin": DAY},
    ]}]}, "r")
    tags, stats = stats_for(
        a=ManifestStats(pushed=NOW - 10 * DAY, last_pull=NOW - 5 * DAY),  # most recently pulled
        b=ManifestStats(pushed=NOW - 2 * DAY),                           # 2nd most recently pushed
        c=ManifestStats(pushed=NOW - 3 * DAY),
        d=ManifestStats(pushed=NOW - 1.5 * DAY),                         # 1st most recently pushed
        e=ManifestStats(pushed=NOW - 20 * DAY, last_pull=NOW - 9 * DAY),
    )
    assert retained_tags(policy, tags, stats, NOW) == {"a", "b", "d"}
    policy = policy_for({"policies": [{"repositories": ["**"], "keepTags": [{"pushedWithin": 2.5 * DAY}]}]},
                        "r")
    assert retained_tags(policy, tags, stats, NOW) == {"b", "d"}


def test_tags_without_statistics_are_kept() -> None:
    policy = policy_for({"policies": [{"repositories": ["**"], "keepTags": [{"pulledWithin": DAY}]}]}, "r")
    assert retained_tags(policy, {"old": "sha256:x", "new": "sha256:y"}, {}, NOW) == {"old", "new"}


def test_no_keep_tags_keeps_every_tag() -> None:
    policy = policy_for({"policies": [{"repositories": ["**"]}]}, "r")
    assert retained_tags(policy, {"a": "sha256:1"}, {"sha256:1": ManifestStats(pushed=0.0)}, NOW) == {"a"}


def test_keep_untagged_rules() -> None:
    policy = policy_for({"policies": [{"repositories": ["**"],
                                       "keepUntagged": {"mostRecentlyPushedCount": 1}}]}, "r")
    stats = {"sha256:a": ManifestStats(pushed=NOW - DAY), "sha256:b": ManifestStats(pushed=NOW - 2 * DAY)}
    assert retained_untagged(policy, ["sha256:a", "sha256:b"], stats, NOW) == {"sha256:a"}
    empty = policy_for({"policies": [{"repositories": ["**"], "keepUntagged": {}}]}, "r")
    assert retained_untagged(empty, ["sha256:a"], stats, NOW) == set()
