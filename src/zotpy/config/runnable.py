"""Refuse configs that ask for protection or storage this release cannot provide.

``zotpy verify`` only loads a config; ``serve`` also calls :func:`check_runnable`, so a config that asks
for authentication or authorization is never served open. This shrinks as those features land.
"""

from __future__ import annotations

from zotpy.errors import ConfigError

from .model import Config, StorageConfig

AUTH_METHODS = ("htpasswd", "ldap", "bearer", "openid", "apikey", "mtls")

_REFUSAL = "zotpy refuses to start: the registry will not run open while the config asks for protection"


def check_runnable(config: Config) -> None:
    """Raise ConfigError naming every configured key whose feature is not built yet."""
    problems: list[str] = []
    auth = config.http.auth or {}
    for method in AUTH_METHODS:
        if auth.get(method):
            problems.append(f"http.auth.{method}: authentication is not available in zotpy yet")
    if config.http.access_control is not None:
        problems.append("http.accessControl: access control is not available in zotpy yet")
    if config.http.tls is not None and config.http.tls.cacert:
        problems.append("http.tls.cacert: client certificate verification (mTLS) is not available yet")
    protection = bool(problems)
    stores: list[tuple[str, StorageConfig]] = [("storage", config.storage)]
    stores += [(f"storage.subPaths./{route}", store) for route, store in config.storage.sub_paths.items()]
    for prefix, store in stores:
        if store.storage_driver is not None:
            problems.append(
                f"{prefix}.storageDriver: storage driver {store.storage_driver['name']!r} is not available "
                "yet (data would silently go to local disk)"
            )
    if problems:
        header = _REFUSAL if protection else "zotpy refuses to start"
        raise ConfigError(header + ":\n" + "\n".join(f"  {line}" for line in problems))
