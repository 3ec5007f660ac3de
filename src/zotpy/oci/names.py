"""The distribution spec's grammar for repository names and tags."""

from __future__ import annotations

import re

from zotpy.errors import ManifestInvalid, NameInvalid

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 255
# Entries of an OCI layout directory: a nested repository may not take these names.
_LAYOUT_ENTRIES = frozenset({"blobs", "index.json", "oci-layout"})


def is_valid_name(name: str) -> bool:
    """True when ``name`` is a repository name zotpy accepts."""
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        return False
    return not any(part in _LAYOUT_ENTRIES for part in name.split("/")[1:])


def check_name(name: str) -> str:
    """Return ``name`` or raise NAME_INVALID."""
    if not is_valid_name(name):
        raise NameInvalid(detail={"name": name[:300]})
    return name


def is_valid_tag(tag: str) -> bool:
    """True when ``tag`` matches the spec's tag grammar."""
    return bool(_TAG_RE.fullmatch(tag))


def check_tag(tag: str) -> str:
    """Return ``tag`` or raise MANIFEST_INVALID naming it."""
    if not is_valid_tag(tag):
        raise ManifestInvalid("invalid tag", detail={"tag": tag[:300]})
    return tag
