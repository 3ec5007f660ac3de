"""Repository patterns (doublestar) and the access policy's decisions."""

from __future__ import annotations

import pytest

from helpers.auth_policy import POLICY
from zotpy.auth.globs import matches
from zotpy.auth.identity import Identity
from zotpy.auth.policy import AccessPolicy


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("**", "a", True), ("**", "a/b/c", True),
    ("tmp/**", "tmp", True), ("tmp/**", "tmp/a", True), ("tmp/**", "tmp/a/b", True),
    ("tmp/**", "tmpx", False),
    ("infra/*", "infra/a", True), ("infra/*", "infra/a/b", False), ("infra/*", "infra", False),
    ("**/app", "app", True), ("**/app", "x/y/app", True), ("**/app", "x/myapp", False),
    ("a/**/z", "a/z", True), ("a/**/z", "a/b/c/z", True), ("a/**/z", "a/bz", False),
    ("a?c", "abc", True), ("a?c", "a/c", False),
    ("repo[0-9]", "repo7", True), ("repo[!0-9]", "repo7", False), ("repo[!0-9]", "repox", True),
    ("{dev,prod}/*", "dev/a", True), ("{dev,prod}/*", "prod/a", True), ("{dev,prod}/*", "qa/a", False),
    ("a.b", "aXb", False), ("a**b", "axxb", True), ("a**b", "a/b", False),
    ("exact/name", "exact/name", True), ("exact/name", "exact/name2", False),
])
def test_doublestar_patterns(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


def user(name: str, *groups: str) -> Identity:
    return Identity(name, frozenset(groups), "htpasswd")


def test_the_longest_matching_pattern_decides() -> None:
    policy = AccessPolicy(POLICY, authentication=True)
    assert policy.pattern_for("tmp/a/b") == "tmp/**"
    assert policy.pattern_for("infra/a") == "infra/*"
    assert policy.pattern_for("infra/a/b") == "**"
    # mary may delete anywhere ** decides, but infra/* names only others
    assert policy.can(user("mary"), "delete", "team/x")
    assert not policy.can(user("mary"), "delete", "infra/x")
    assert policy.can(user("mary"), "read", "infra/x")  # defaultPolicy of infra/*


def test_user_group_default_anonymous_and_admin_rules() -> None:
    policy = AccessPolicy(POLICY, authentication=True)
    assert policy.groups_of("alice") == frozenset({"group2"})
    alice = user("alice", *policy.groups_of("alice"))
    assert policy.can(alice, "delete", "team/x")  # group2 policy on **
    assert policy.can(user("eve"), "create", "team/x") and not policy.can(user("eve"), "update", "team/x")
    assert not policy.can(None, "read", "team/x") and policy.can(None, "read", "public/x")
    assert not policy.can(user("eve"), "read", "prod/x")  # no defaultPolicy there
    assert policy.can(user("someone", "developers"), "delete", "prod/x")  # admin by group
    assert not policy.can(user("someone", "developers"), "detectManifestCollision", "prod/x")
    assert policy.anonymous_may_act()


def test_no_matching_pattern_is_for_admins_only() -> None:
    policy = AccessPolicy({"repositories": {"only/*": {"defaultPolicy": ["read"]}},
                           "adminPolicy": {"users": ["root"], "actions": ["read"]}}, authentication=True)
    assert not policy.can(user("eve"), "read", "other")
    assert policy.can(user("root"), "read", "other")
    assert not policy.can(user("root"), "create", "other")
    assert not policy.anonymous_may_act()


def test_without_access_control() -> None:
    protected = AccessPolicy(None, authentication=True)
    assert protected.can(user("eve"), "delete", "x") and not protected.can(None, "read", "x")
    open_registry = AccessPolicy(None, authentication=False)
    assert open_registry.can(None, "delete", "x") and open_registry.anonymous_may_act()


def test_bearer_tokens_carry_their_own_grants() -> None:
    policy = AccessPolicy(POLICY, authentication=True)
    token = Identity("ci", method="bearer", token_access={"team/a": frozenset({"pull", "push"})})
    assert policy.can(token, "read", "team/a") and policy.can(token, "update", "team/a")
    assert not policy.can(token, "delete", "team/a")
    assert not policy.can(token, "read", "public/x")  # accessControl is bypassed, even its anonymous grants


def test_identity_prints_as_its_username() -> None:
    assert str(user("eve")) == "eve"
