"""A JSON-able view of a Config for logs, with every secret replaced by ``******``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .model import Config

MASK = "******"

# Key names (lower-cased) holding secrets, wherever they appear; free-form driver maps included.
SECRET_KEYS = frozenset({
    "password", "bindpassword", "accesskey", "secretkey", "sessiontoken", "clientsecret", "secret",
    "hashkey", "encryptkey", "accountkey", "token", "sentinel_password",
})


def sanitized(config: Config) -> dict[str, Any]:
    """``config`` as plain dicts and lists, secrets masked; dataclass fields keep their snake_case names."""
    result = _plain(config)
    assert isinstance(result, dict)
    return result


def _plain(value: Any, key: str = "") -> Any:
    if _is_secret(key) and value not in (None, ""):
        return MASK
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name), item.name) for item in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(name): _plain(item, str(name)) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, str) and key.lower() == "url":
        return _mask_url_password(value)
    return value


def _is_secret(key: str) -> bool:
    return key.lower() in SECRET_KEYS


def _mask_url_password(url: str) -> str:
    """``redis://user:pass@host`` → ``redis://user:******@host``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
