"""Who is calling: the one value authentication produces and access control reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Identity:
    """An authenticated caller; anonymous callers have no Identity (``None``).

    ``method`` names the backend that vouched for the user (``htpasswd``, ``ldap``, ``apikey``,
    ``bearer``, ``session``).  ``token_access`` is set only for classic bearer tokens: it maps a
    repository name to the actions the token grants (``pull``, ``push``, ``delete``), and then it alone
    decides (zot bypasses ``accessControl`` for such tokens).
    """

    username: str
    groups: frozenset[str] = frozenset()
    method: str = ""
    token_access: Mapping[str, frozenset[str]] | None = field(default=None)

    def __str__(self) -> str:
        # Logs, audit lines and per-user tables (stars, bookmarks) name the user.
        return self.username
