"""zotpy's configuration: zot's config format, validated once into immutable objects.

- :func:`load` / :func:`load_mapping` validate a config (what ``zotpy verify`` needs);
- :func:`check_runnable` refuses what this release cannot serve safely (what ``zotpy serve`` adds);
- :func:`sanitized` gives a secret-free dict for logs.

Keys match zot's case-insensitively; unknown keys and bad values are :class:`~zotpy.errors.ConfigError`
naming the key path. Sections kept as mappings (``extensions``, ``http.auth``...) use zot's key spellings
(``updateInterval``), with durations as float seconds and relative paths made absolute.
"""

from .loader import load, load_mapping
from .model import Config, GlobalStorageConfig, HTTPConfig, LogConfig, StorageConfig, TLSConfig
from .runnable import check_runnable
from .sanitize import sanitized

__all__ = [
    "Config",
    "GlobalStorageConfig",
    "HTTPConfig",
    "LogConfig",
    "StorageConfig",
    "TLSConfig",
    "check_runnable",
    "load",
    "load_mapping",
    "sanitized",
]
