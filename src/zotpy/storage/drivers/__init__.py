"""Storage drivers, chosen by name from the config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from zotpy.errors import ConfigError
from zotpy.storage.drivers.base import (
    Driver,
    FileInfo,
    PathNotFound,
    PathOutsideRoot,
    StorageError,
    StorageFull,
)
from zotpy.storage.drivers.local import LocalDriver

__all__ = ["Driver", "FileInfo", "LocalDriver", "PathNotFound", "PathOutsideRoot", "StorageError",
           "StorageFull", "build_driver"]

AVAILABLE = ("local", "s3")

DIRECT_WRITES_ENV = "ZOTPY_DIRECT_WRITES"
"""``off`` keeps large local writes in the page cache (see directio.py); anything else, or unset, is on."""


def direct_writes_enabled() -> bool:
    """Whether large blob writes bypass the page cache (``ZOTPY_DIRECT_WRITES``, default on)."""
    return os.environ.get(DIRECT_WRITES_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def build_driver(root: str, settings: Mapping[str, Any] | None, *, commit: bool) -> Driver:
    """The driver a store's config names (no ``storageDriver`` means the local filesystem)."""
    name = (settings or {}).get("name", "local")
    if name == "local":
        return LocalDriver(root, commit=commit, direct_writes=direct_writes_enabled())
    if name == "s3":
        from zotpy.storage.drivers.s3 import S3Driver  # boto3 is imported only when S3 is configured

        return S3Driver.from_config(settings)
    raise ConfigError(f"storage.storageDriver.name: {name!r} is not available "
                      f"(available: {', '.join(AVAILABLE)})")
