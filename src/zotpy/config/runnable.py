"""Refuse configs that ask for protection or storage this release cannot provide.

``zotpy verify`` only loads a config; ``serve`` also calls :func:`check_runnable`, so a config that asks
for authentication or authorization is never served open. This shrinks as those features land.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zotpy.errors import ConfigError

from .model import Config, StorageConfig

BUILT_STORAGE_DRIVERS = ("s3",)

AUTH_METHODS = ("openid", "mtls")
"""Authentication methods not built yet (htpasswd, ldap, bearer and apikey are)."""

_REFUSAL = "zotpy refuses to start: the registry will not run open while the config asks for protection"


def check_runnable(config: Config) -> None:
    """Raise ConfigError naming every configured key whose feature is not built yet."""
    problems: list[str] = []
    auth = config.http.auth or {}
    for method in AUTH_METHODS:
        if auth.get(method):
            problems.append(f"http.auth.{method}: authentication is not available in zotpy yet")
    problems += _bearer_problems(auth.get("bearer"))
    problems += _access_control_problems(config)
    if config.http.tls is not None and config.http.tls.cacert:
        problems.append("http.tls.cacert: client certificate verification (mTLS) is not available yet")
    protection = bool(problems)
    stores: list[tuple[str, StorageConfig]] = [("storage", config.storage)]
    stores += [(f"storage.subPaths./{route}", store) for route, store in config.storage.sub_paths.items()]
    for prefix, store in stores:
        if store.storage_driver is not None and store.storage_driver["name"] in BUILT_STORAGE_DRIVERS:
            if not store.root_directory:
                problems.append(f"{prefix}.rootDirectory: required with storageDriver "
                                "(a local directory for this node's locks and embedded database)")
        elif store.storage_driver is not None:
            problems.append(
                f"{prefix}.storageDriver: storage driver {store.storage_driver['name']!r} is not available "
                "yet (data would silently go to local disk)"
            )
    if problems:
        header = _REFUSAL if protection else "zotpy refuses to start"
        raise ConfigError(header + ":\n" + "\n".join(f"  {line}" for line in problems))


def _access_control_problems(config: Config) -> list[str]:
    """CEL ``conditions`` are not built; without authentication only anonymous policies make sense."""
    access = config.http.access_control
    if access is None:
        return []
    problems = []
    for pattern, rules in (access.get("repositories") or {}).items():
        for number, policy in enumerate(rules.get("policies") or ()):
            if policy.get("conditions"):
                problems.append(f"http.accessControl.repositories.{pattern}.policies[{number}].conditions: "
                                "CEL conditions are not available in zotpy yet")
    auth = config.http.auth or {}
    if not any(auth.get(method) for method in ("htpasswd", "ldap", "bearer", "apikey", "openid", "mtls")):
        for pattern, rules in (access.get("repositories") or {}).items():
            if rules.get("policies") or rules.get("defaultPolicy"):
                problems.append(f"http.accessControl.repositories.{pattern}: only anonymousPolicy may be "
                                "set without http.auth (nobody could log in to use the other policies)")
        if access.get("adminPolicy"):
            problems.append("http.accessControl.adminPolicy: needs http.auth (nobody could log in as admin)")
    return problems


def _bearer_problems(bearer: Mapping[str, Any] | None) -> list[str]:
    """Classic bearer tokens verified with ``cert`` are built; the other key sources are not."""
    if not bearer:
        return []
    problems = [f"http.auth.bearer.{key}: not available in zotpy yet"
                for key in ("awsSecretsManager", "oidc", "upstreamTokenEndpoint") if bearer.get(key)]
    if not bearer.get("cert") and not problems:
        problems.append("http.auth.bearer.cert: required (the token service's certificate or public key)")
    return problems
