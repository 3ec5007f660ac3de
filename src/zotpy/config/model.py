"""Immutable configuration objects produced by :func:`zotpy.config.load`.

Field names are zot's keys in snake_case; durations are seconds (float).
Sections whose feature is not built yet keep their validated raw mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class StorageConfig:
    """One store: the default one, or a `subPaths` entry."""

    root_directory: str
    dedupe: bool = True
    gc: bool = True
    gc_delay: float = 3600.0
    gc_interval: float = 3600.0
    commit: bool = False
    remote_cache: bool = False
    storage_driver: Mapping[str, Any] | None = None
    cache_driver: Mapping[str, Any] | None = None
    retention: Mapping[str, Any] | None = None
    gc_time_window: str | None = None
    max_repos: int = 0
    redirect_blob_url: bool = False


@dataclass(frozen=True)
class GlobalStorageConfig(StorageConfig):
    """The top-level `storage` section: a store plus its sub-path stores."""

    sub_paths: Mapping[str, StorageConfig] = field(default_factory=lambda: EMPTY)
    fast_restart: bool = False


@dataclass(frozen=True)
class TLSConfig:
    cert: str
    key: str
    cacert: str | None = None


@dataclass(frozen=True)
class HTTPConfig:
    address: str = "127.0.0.1"
    port: int = 8080
    realm: str = ""
    external_url: str | None = None
    allow_origin: str | None = None
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    tls: TLSConfig | None = None
    compat: tuple[str, ...] = ()
    auth: Mapping[str, Any] | None = None
    access_control: Mapping[str, Any] | None = None
    ratelimit: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LogConfig:
    level: str = "debug"
    output: str | None = None
    audit: str | None = None


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    storage: GlobalStorageConfig
    dist_spec_version: str = "1.1.1"
    http: HTTPConfig = field(default_factory=HTTPConfig)
    log: LogConfig = field(default_factory=LogConfig)
    extensions: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    scheduler: Mapping[str, Any] | None = None
    cluster: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    source: str | None = None

    @property
    def docker_compat(self) -> bool:
        """True when `http.compat` lists `docker2s2`."""
        return "docker2s2" in self.http.compat
