"""The access policy (zot's ``accessControl``): ``can(identity, action, repo)``.

For a repository the longest matching pattern decides; within it, a policy naming the user, then one
naming one of the user's groups, then ``defaultPolicy`` (any authenticated user), then
``anonymousPolicy`` (anonymous callers only).  ``adminPolicy`` grants what it lists on top.  A
repository no pattern matches is for admins only.  Classic bearer tokens carry their own grants and
bypass all of this, as in zot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zotpy.auth.globs import compile_glob, matches
from zotpy.auth.identity import Identity
from zotpy.errors import ConfigError

READ, CREATE, UPDATE, DELETE = "read", "create", "update", "delete"
TOKEN_ACTIONS = {READ: "pull", CREATE: "push", UPDATE: "push", DELETE: "delete"}
"""The Docker token action each access-control action needs."""


@dataclass(frozen=True)
class _Policy:
    users: frozenset[str]
    groups: frozenset[str]
    actions: frozenset[str]


@dataclass(frozen=True)
class _RepoRules:
    policies: tuple[_Policy, ...]
    default: frozenset[str]
    anonymous: frozenset[str]


def _policy(raw: Mapping[str, Any]) -> _Policy:
    return _Policy(frozenset(raw.get("users", ())), frozenset(raw.get("groups", ())),
                   frozenset(raw.get("actions", ())))


class AccessPolicy:
    """Answers who may do what where, for one configuration."""

    def __init__(self, access_control: Mapping[str, Any] | None, *, authentication: bool) -> None:
        self.configured = access_control is not None
        self.authentication = authentication
        section = access_control or {}
        self.repositories: dict[str, _RepoRules] = {}
        for pattern, raw in (section.get("repositories") or {}).items():
            try:
                compile_glob(pattern)
            except ValueError as exc:
                raise ConfigError(f"http.accessControl.repositories.{pattern}: {exc}") from None
            self.repositories[pattern] = _RepoRules(
                tuple(_policy(p) for p in raw.get("policies", ())),
                frozenset(raw.get("defaultPolicy", ())), frozenset(raw.get("anonymousPolicy", ())))
        self.admin = _policy(section.get("adminPolicy") or {})
        self.group_members: dict[str, frozenset[str]] = {
            name: frozenset(raw.get("users", ())) for name, raw in (section.get("groups") or {}).items()}
        # Longest first, ties in a fixed order, so the first match is the one that decides.
        self._patterns = sorted(self.repositories, key=lambda p: (-len(p), p))
        self.anonymous_actions = any(rules.anonymous for rules in self.repositories.values())

    def groups_of(self, username: str) -> frozenset[str]:
        """The ``accessControl.groups`` that list ``username``."""
        return frozenset(name for name, users in self.group_members.items() if username in users)

    def pattern_for(self, repo: str) -> str | None:
        return next((p for p in self._patterns if matches(p, repo)), None)

    def is_admin(self, identity: Identity | None) -> bool:
        if identity is None:
            return False
        return identity.username in self.admin.users or bool(identity.groups & self.admin.groups)

    def can(self, identity: Identity | None, action: str, repo: str) -> bool:
        if identity is not None and identity.token_access is not None:
            return TOKEN_ACTIONS.get(action, action) in identity.token_access.get(repo, frozenset())
        if not self.configured:
            # Without accessControl: open when no authentication is set, else any authenticated user.
            return identity is not None or not self.authentication
        pattern = self.pattern_for(repo)
        if pattern is not None and self._permitted(self.repositories[pattern], identity, action):
            return True
        return self.is_admin(identity) and action in self.admin.actions

    @staticmethod
    def _permitted(rules: _RepoRules, identity: Identity | None, action: str) -> bool:
        if identity is None:
            return action in rules.anonymous
        for policy in rules.policies:
            if identity.username in policy.users and action in policy.actions:
                return True
        for policy in rules.policies:
            if identity.groups & policy.groups and action in policy.actions:
                return True
        return action in rules.default

    def anonymous_may_act(self) -> bool:
        """True when an anonymous caller may do something somewhere (then ``/v2/`` answers them 200)."""
        if not self.authentication:
            return True
        return self.configured and self.anonymous_actions

    def readable(self, identity: Identity | None, names: Iterable[str]) -> list[str]:
        return [name for name in names if self.can(identity, READ, name)]
