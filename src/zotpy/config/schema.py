"""Marshmallow schemas mirroring zot's configuration keys (see reference/zot.md §2).

Loading a schema yields plain dicts keyed by zot's spellings, with durations in float seconds, ports as
ints and relative paths resolved (see :mod:`zotpy.config.loader`). Defaults that zot documents for the
core sections are filled in here; the loader turns the result into :mod:`zotpy.config.model` objects.
"""

from __future__ import annotations

import os
import re
from typing import Any

from marshmallow import ValidationError, post_load, validates_schema

from zotpy import DIST_SPEC_VERSION

from .base import ZotSchema
from .fields import URL, Bool, Duration, FreeMap, Int, KeyedMap, List, Path, Port, Regex, Section, Str
from .schema_auth import AccessControlSchema, AuthSchema
from .schema_extensions import ExtensionsSchema

DEFAULT_GC_DELAY = 3600.0
DEFAULT_GC_INTERVAL = 3600.0
STORAGE_DRIVERS = ("s3", "gcs", "azure")
CACHE_DRIVERS = ("dynamodb", "redis", "postgresql")
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")

# One repository-name path component (OCI distribution spec grammar), behind a slash.
_ROUTE = re.compile(r"/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TIME_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


def _check_time_window(value: str) -> None:
    match = _TIME_WINDOW.fullmatch(value)
    if match is None:
        raise ValidationError(f"expected 'HH:MM-HH:MM' (UTC, 24-hour clock), got {value!r}")
    if match.group(1, 2) == match.group(3, 4):
        raise ValidationError(f"start and end of the window are the same in {value!r}")


def _check_route(route: str) -> str | None:
    if _ROUTE.fullmatch(route) is None:
        return "a subPaths route must be '/' followed by one repository name component, such as '/a'"
    return None


class KeepRulesSchema(ZotSchema):
    """Rules keeping untagged manifests (``keepUntagged``)."""

    pulledWithin = Duration()
    pushedWithin = Duration()
    mostRecentlyPushedCount = Int(minimum=0)
    mostRecentlyPulledCount = Int(minimum=0)


class KeepTagsSchema(KeepRulesSchema):
    patterns = List(Regex())


class RetentionPolicySchema(ZotSchema):
    repositories = List(Str(non_empty=True))
    deleteReferrers = Bool(load_default=False)
    deleteUntagged = Bool(load_default=True)
    keepTags = List(Section(KeepTagsSchema))
    keepUntagged = Section(KeepRulesSchema)


class RetentionSchema(ZotSchema):
    dryRun = Bool(load_default=False)
    delay = Duration()
    policies = List(Section(RetentionPolicySchema))


class StoreSchema(ZotSchema):
    """The per-store keys, shared by ``storage`` and each ``storage.subPaths`` entry."""

    rootDirectory = Path()
    dedupe = Bool(load_default=True)
    gc = Bool(load_default=True)
    gcDelay = Duration()
    gcInterval = Duration()
    gcTimeWindow = Str(validate=_check_time_window)
    commit = Bool(load_default=False)
    remoteCache = Bool()
    maxRepos = Int(minimum=0, load_default=0)
    redirectBlobURL = Bool(load_default=False)
    storageDriver = FreeMap(names=STORAGE_DRIVERS)
    cacheDriver = FreeMap(names=CACHE_DRIVERS)
    retention = Section(RetentionSchema)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        driver = data.get("storageDriver")
        if not data.get("rootDirectory") and driver is None:
            errors["rootDirectory"] = ["required key missing (the directory holding this store)"]
        if data["redirectBlobURL"] and driver is None:
            errors["redirectBlobURL"] = ["only valid with a storageDriver (s3, gcs or azure)"]
        cache = data.get("cacheDriver")
        if cache is not None and cache["name"] == "dynamodb":
            if driver is None:
                errors["cacheDriver"] = ["dynamodb is only usable with a storageDriver (cloud storage)"]
            elif not cache.get("cachetablename"):
                errors["cacheDriver"] = ["dynamodb needs cacheTablename"]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _defaults(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data.setdefault("rootDirectory", "")
        data.setdefault("gcDelay", DEFAULT_GC_DELAY if data["gc"] else 0.0)
        data.setdefault("gcInterval", DEFAULT_GC_INTERVAL if data["gc"] else 0.0)
        data.setdefault("remoteCache", "storageDriver" in data and data["dedupe"])
        retention = data.get("retention")
        if retention is not None and "delay" not in retention and data["gc"]:
            retention["delay"] = data["gcDelay"]
        return data


class GlobalStorageSchema(StoreSchema):
    subPaths = KeyedMap(Section(StoreSchema), check_key=_check_route)
    fastRestart = Bool(load_default=False)

    @validates_schema
    def _separate_stores(self, data: dict[str, Any], **kwargs: Any) -> None:
        sub_paths: dict[str, dict[str, Any]] = data.get("subPaths", {})
        errors: dict[str, dict[str, list[str]]] = {}
        for route, store in sub_paths.items():
            if store["gc"] and store["gcDelay"] <= 0:
                errors.setdefault(route, {})["gcDelay"] = ["must be greater than 0 when gc is on"]
        roots = [("storage", data.get("rootDirectory", ""))]
        roots += [(f"subPaths.{route}", store["rootDirectory"]) for route, store in sub_paths.items()]
        for index, (route, store) in enumerate(sub_paths.items(), start=1):
            for other, other_root in roots[:index]:
                problem = _overlap(store["rootDirectory"], other_root)
                if problem:
                    message = f"{problem} the rootDirectory of {other}"
                    errors.setdefault(route, {})["rootDirectory"] = [message]
                    break
        if errors:
            raise ValidationError({"subPaths": errors})


def _overlap(root: str, other: str) -> str | None:
    """How two store roots collide, if they do (each store needs a tree of its own)."""
    if not root or not other:
        return None
    if root == other:
        return "is the same directory as"
    common = os.path.commonpath([root, other])
    if common == other:
        return "is nested inside"
    if common == root:
        return "contains"
    return None


class TLSSchema(ZotSchema):
    cert = Path(required=True, non_empty=True)
    key = Path(required=True, non_empty=True)
    cacert = Path()


class ClientTLSSchema(ZotSchema):
    cert = Path()
    key = Path()
    cacert = Path()


class MethodRateLimitSchema(ZotSchema):
    method = Str(required=True, non_empty=True)
    rate = Int(required=True, minimum=1)


class RateLimitSchema(ZotSchema):
    rate = Int(minimum=1)
    methods = List(Section(MethodRateLimitSchema))


class HTTPSchema(ZotSchema):
    address = Str(load_default="127.0.0.1")
    port = Port(load_default=8080)
    externalUrl = URL()
    realm = Str(load_default="")
    allowOrigin = Str()
    readTimeout = Duration(load_default=60.0)
    writeTimeout = Duration(load_default=60.0)
    tls = Section(TLSSchema)
    auth = Section(AuthSchema)
    accessControl = Section(AccessControlSchema)
    ratelimit = Section(RateLimitSchema)
    compat = List(Str(choices=("docker2s2",)))


def _check_level(level: str) -> None:
    if level.lower() not in LOG_LEVELS:
        raise ValidationError(f"expected one of {', '.join(LOG_LEVELS)}; got {level!r}")


class LogSchema(ZotSchema):
    level = Str(load_default="debug", validate=_check_level)
    output = Path()
    audit = Path()

    @post_load
    def _lower_level(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["level"] = data["level"].lower()
        return data


class SchedulerSchema(ZotSchema):
    numWorkers = Int(minimum=1)


def _check_members(members: list[str]) -> None:
    if not members:
        raise ValidationError("needs the host:port of every cluster member")


def _check_hash_key(key: str) -> None:
    if len(key) != 16:
        raise ValidationError(f"must be exactly 16 characters (a 128-bit siphash key), got {len(key)}")


class ClusterSchema(ZotSchema):
    members = List(Str(non_empty=True), required=True, validate=_check_members)
    hashKey = Str(required=True, validate=_check_hash_key)
    tls = Section(ClientTLSSchema)


class ConfigSchema(ZotSchema):
    """The whole file."""

    distSpecVersion = Str(load_default=DIST_SPEC_VERSION)
    storage = Section(GlobalStorageSchema, required=True)
    http = Section(HTTPSchema)
    log = Section(LogSchema)
    extensions = Section(ExtensionsSchema)
    scheduler = Section(SchedulerSchema)
    cluster = Section(ClusterSchema)
    # Build metadata zot itself writes into the config it prints; accepted and ignored.
    goVersion = Str()
    commit = Str()
    releaseTag = Str()
    binaryType = Str()

    def complete(self, data: dict[str, Any]) -> dict[str, Any]:
        data.setdefault("http", {})
        data.setdefault("log", {})
        return data

    @validates_schema
    def _across_sections(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: list[tuple[tuple[str | int, ...], str]] = []
        http, storage = data["http"], data["storage"]
        extensions = data.get("extensions", {})
        if "mtls" in http.get("auth", {}) and not http.get("tls", {}).get("cacert"):
            errors.append((("http", "auth", "mtls"), "needs http.tls.cacert to verify client certificates"))
        sync = extensions.get("sync", {})
        for index, registry in enumerate(sync.get("registries", [])):
            if registry["preserveDigest"] and "docker2s2" not in http.get("compat", []):
                errors.append((("extensions", "sync", "registries", index, "preserveDigest"),
                               "needs 'docker2s2' in http.compat"))
        if "storageDriver" in storage:
            search = extensions.get("search", {})
            if search.get("enable") and "cve" in search:
                errors.append((("extensions", "search", "cve"), "CVE scanning needs local storage"))
            if sync.get("enable") and not sync.get("downloadDir"):
                errors.append((("extensions", "sync", "downloadDir"), "required with remote storage"))
        if errors:
            raise ValidationError(_nest(errors))


def _nest(errors: list[tuple[tuple[str | int, ...], str]]) -> dict[Any, Any]:
    """``[(("a", "b"), "msg")]`` as marshmallow's nested error dict ``{"a": {"b": ["msg"]}}``."""
    result: dict[Any, Any] = {}
    for path, message in errors:
        node = result
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node.setdefault(path[-1], []).append(message)
    return result
