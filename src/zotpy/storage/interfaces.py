"""What the image store needs injected: the storage index and cross-process locks.

Both are provided by lower-level infrastructure (``zotpy.meta.storeindex``,
``zotpy.locks``); the store only knows these protocols.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Protocol


class StorageIndex(Protocol):
    """Digest → locations (for dedupe) and the repository catalog, kept in step with writes."""

    def locations(self, digest: str) -> list[str]: ...
    def add_location(self, digest: str, path: str) -> None: ...
    def remove_location(self, digest: str, path: str) -> None: ...
    def add_repository(self, name: str) -> None: ...
    def remove_repository(self, name: str) -> None: ...
    def has_repository(self, name: str) -> bool: ...
    def list_repositories(self, last: str | None = None, limit: int | None = None) -> list[str]: ...
    def replace_all(self, repositories: Iterable[str], locations: Iterable[tuple[str, str]]) -> None: ...


class Locks(Protocol):
    """Exclusive named locks that hold across worker processes."""

    def lock(self, name: str, timeout: float | None = None) -> AbstractContextManager[None]: ...
