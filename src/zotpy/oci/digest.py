"""Digest values (``algorithm:hex``) and hashing helpers for sha256 and sha512."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from zotpy.errors import DigestInvalid

# The spec's grammar: algorithm components joined by separators, then an encoded part.
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX_RE = re.compile(r"^[a-f0-9]+$")
SUPPORTED_ALGORITHMS = tuple(_HEX_LENGTH)
DEFAULT_ALGORITHM = "sha256"


@dataclass(frozen=True, order=True)
class Digest:
    """A validated content digest of a supported algorithm."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Parse and validate ``value``; any malformed or unsupported digest is DIGEST_INVALID."""
        if not isinstance(value, str) or not _DIGEST_RE.match(value):
            raise DigestInvalid("invalid digest format", detail={"digest": _clip(value)})
        algorithm, _, encoded = value.partition(":")
        length = _HEX_LENGTH.get(algorithm)
        if length is None:
            raise DigestInvalid("unsupported digest algorithm", detail={"digest": _clip(value)})
        if len(encoded) != length or not _HEX_RE.match(encoded):
            raise DigestInvalid("invalid digest encoding", detail={"digest": _clip(value)})
        return cls(algorithm, encoded)

    def hasher(self) -> Any:
        """A new hash object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    @classmethod
    def of(cls, data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
        """The digest of ``data``."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())


def looks_like_digest(reference: str) -> bool:
    """True when a manifest reference is meant as a digest (it has a colon; tags cannot)."""
    return ":" in reference


def new_hasher(algorithm: str = DEFAULT_ALGORITHM) -> Any:
    """A new hash object for ``algorithm``."""
    return hashlib.new(algorithm)


def _clip(value: object) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "..."
