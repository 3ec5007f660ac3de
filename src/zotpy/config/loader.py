"""Read a zot-format config file into an immutable :class:`~zotpy.config.model.Config`.

Relative paths in the config (every store's ``rootDirectory``, TLS files, log files, htpasswd and
credentials files, sync directories...) are resolved against the directory holding the config file, or
``base_dir`` for :func:`load_mapping` (the current directory when None), so the same file works from a
systemd unit or any working directory. ``storageDriver.rootdirectory`` is a key prefix in a bucket and
is left alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import yaml
from marshmallow import ValidationError

from zotpy import DIST_SPEC_VERSION
from zotpy.errors import ConfigError

from .fields import BASE_DIR
from .model import Config, GlobalStorageConfig, HTTPConfig, LogConfig, StorageConfig, TLSConfig
from .schema import ConfigSchema

JSON_SUFFIXES = (".json",)
YAML_SUFFIXES = (".yaml", ".yml")

_MARSHMALLOW_WORDING = {
    "Missing data for required field.": "required key missing",
    "Field may not be null.": "must not be null",
    "Invalid input type.": "expected a mapping",
    "Invalid value.": "invalid value",
}


def load(path: str | os.PathLike[str]) -> Config:
    """Load and validate the config file at ``path`` (JSON or YAML, chosen by extension)."""
    filename = os.fspath(path)
    try:
        with open(filename, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as error:
        raise ConfigError(f"{filename}: cannot read the config file: {error.strerror}") from None
    data = _parse(text, filename)
    return load_mapping(data, source=filename, base_dir=os.path.dirname(os.path.abspath(filename)))


def _parse(text: str, filename: str) -> Any:
    suffix = os.path.splitext(filename)[1].lower()
    if suffix in JSON_SUFFIXES:
        return _parse_json(text, filename)
    if suffix in YAML_SUFFIXES:
        return _parse_yaml(text, filename)
    if suffix:
        raise ConfigError(f"{filename}: unsupported config format {suffix!r}; use .json, .yaml or .yml")
    try:
        return _parse_json(text, filename)
    except ConfigError:
        return _parse_yaml(text, filename)


def _parse_json(text: str, filename: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{filename}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None


def _parse_yaml(text: str, filename: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{filename}: invalid YAML: {error}") from None


def load_mapping(data: Mapping[str, Any], source: str | None = None, base_dir: str | None = None) -> Config:
    """Validate an already parsed config; ``base_dir`` anchors relative paths (cwd when None)."""
    label = source or "config"
    if data is None or (isinstance(data, Mapping) and not data):
        raise ConfigError(f"{label}: the configuration is empty")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{label}: the configuration must be a mapping of sections")
    token = BASE_DIR.set(os.path.abspath(base_dir) if base_dir else None)
    try:
        loaded = ConfigSchema().load(data)
    except ValidationError as error:
        lines = [f"  {path}: {problem}" for path, problem in flatten_errors(error.messages)]
        raise ConfigError(f"{label}: invalid configuration:\n" + "\n".join(lines)) from None
    finally:
        BASE_DIR.reset(token)
    return _build(loaded, source)


def flatten_errors(messages: Any, path: str = "") -> list[tuple[str, str]]:
    """Marshmallow's nested error dict as ``(key.path, problem)`` pairs; list items read ``[i]``."""
    if isinstance(messages, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in messages.items():
            if key == "_schema":
                child = path
            elif isinstance(key, int):
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            pairs += flatten_errors(value, child)
        return pairs
    if isinstance(messages, (list, tuple)):
        return [pair for message in messages for pair in flatten_errors(message, path)]
    return [(path or "config", _MARSHMALLOW_WORDING.get(str(messages), str(messages)))]


def freeze(value: Any) -> Any:
    """A read-only copy: mappings become MappingProxyType, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def _optional(value: Any) -> Any:
    """A frozen section, or None when absent."""
    return None if value is None else freeze(value)


def _store_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "root_directory": data["rootDirectory"],
        "dedupe": data["dedupe"],
        "gc": data["gc"],
        "gc_delay": data["gcDelay"],
        "gc_interval": data["gcInterval"],
        "commit": data["commit"],
        "remote_cache": data["remoteCache"],
        "storage_driver": _optional(data.get("storageDriver")),
        "cache_driver": _optional(data.get("cacheDriver")),
        "retention": _optional(data.get("retention")),
        "gc_time_window": data.get("gcTimeWindow"),
        "max_repos": data["maxRepos"],
        "redirect_blob_url": data["redirectBlobURL"],
    }


def _build(data: Mapping[str, Any], source: str | None) -> Config:
    storage_data, http_data, log_data = data["storage"], data["http"], data["log"]
    sub_paths = {
        route.lstrip("/"): StorageConfig(**_store_fields(store))
        for route, store in storage_data.get("subPaths", {}).items()
    }
    storage = GlobalStorageConfig(
        **_store_fields(storage_data),
        sub_paths=MappingProxyType(sub_paths),
        fast_restart=storage_data["fastRestart"],
    )
    tls_data = http_data.get("tls")
    tls = TLSConfig(tls_data["cert"], tls_data["key"], tls_data.get("cacert") or None) if tls_data else None
    http = HTTPConfig(
        address=http_data["address"],
        port=http_data["port"],
        realm=http_data["realm"],
        external_url=http_data.get("externalUrl"),
        allow_origin=http_data.get("allowOrigin"),
        read_timeout=http_data["readTimeout"],
        write_timeout=http_data["writeTimeout"],
        tls=tls,
        compat=tuple(http_data.get("compat", ())),
        auth=_optional(http_data.get("auth")),
        access_control=_optional(http_data.get("accessControl")),
        ratelimit=_optional(http_data.get("ratelimit")),
    )
    log = LogConfig(level=log_data["level"], output=log_data.get("output") or None,
                    audit=log_data.get("audit") or None)
    return Config(
        storage=storage,
        dist_spec_version=data["distSpecVersion"],
        http=http,
        log=log,
        extensions=freeze(data.get("extensions", {})),
        scheduler=_optional(data.get("scheduler")),
        cluster=_optional(data.get("cluster")),
        warnings=tuple(_warnings(data)),
        source=source,
    )


_BUILT_EXTENSIONS = frozenset({"search", "mgmt", "scrub"})  # mgmt follows search, as in zot
_MIN_SCRUB_INTERVAL = 2 * 3600.0
_NOT_BUILT = "is accepted but has no effect yet: zotpy does not implement it in this release"


def _warnings(data: Mapping[str, Any]) -> list[str]:
    """One line per configured section that zotpy parses but does not act on yet."""
    warnings: list[str] = []
    if data["distSpecVersion"] != DIST_SPEC_VERSION:
        warnings.append(
            f"distSpecVersion {data['distSpecVersion']!r} differs from the version zotpy implements "
            f"({DIST_SPEC_VERSION}); zotpy serves {DIST_SPEC_VERSION}"
        )
    storage = data["storage"]
    stores = [("storage", storage)]
    stores += [(f"storage.subPaths.{route}", store) for route, store in storage.get("subPaths", {}).items()]
    for prefix, store in stores:
        if "cacheDriver" in store and store["cacheDriver"]["name"] != "postgresql":
            warnings.append(f"{prefix}.cacheDriver {_NOT_BUILT}")
        if _retention_needs_metadata(store.get("retention")) and not _metadata_on(data):
            warnings.append(f"{prefix}.retention: keepTags and keepUntagged rules other than patterns read "
                            "push and pull statistics from the metadata database, which only runs with "
                            "extensions.search on; without it those rules keep every tag they match")
        if store["maxRepos"]:
            warnings.append(f"{prefix}.maxRepos {_NOT_BUILT}")
    if "ratelimit" in data["http"]:
        warnings.append(f"http.ratelimit {_NOT_BUILT}")
    for section in ("scheduler", "cluster"):
        if section in data:
            warnings.append(f"{section} {_NOT_BUILT}")
    for name, section in data.get("extensions", {}).items():
        if name in _BUILT_EXTENSIONS:
            if name == "search" and (section or {}).get("cve") is not None:
                warnings.append(f"extensions.search.cve {_NOT_BUILT}")
            scrub_interval = (section or {}).get("interval") if name == "scrub" else None
            if scrub_interval is not None and scrub_interval < _MIN_SCRUB_INTERVAL:
                warnings.append(f"extensions.scrub.interval {scrub_interval:g}s is below zot's minimum; "
                                f"scrub runs every {_MIN_SCRUB_INTERVAL:g}s")
            continue
        warnings.append(f"extensions.{name} {_NOT_BUILT}")
    return warnings


def _retention_needs_metadata(retention: Mapping[str, Any] | None) -> bool:
    rules = ("pulledWithin", "pushedWithin", "mostRecentlyPushedCount", "mostRecentlyPulledCount")
    for policy in (retention or {}).get("policies", ()):
        for entry in [*policy.get("keepTags", ()), policy.get("keepUntagged") or {}]:
            if any(entry.get(rule) is not None for rule in rules):
                return True
    return False


def _metadata_on(data: Mapping[str, Any]) -> bool:
    search = data.get("extensions", {}).get("search")
    return search is not None and search.get("enable", True) is not False
