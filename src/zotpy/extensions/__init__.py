"""Extensions: features beyond the distribution spec, each switched on by its config section.

Each extension module offers ``is_enabled(config)``, ``endpoints(config)`` (paths listed by
``/v2/_oci/ext/discover``), ``NEEDS_METADATA`` and ``init_app(app, ctx)``.  Only ``zotpy.app`` calls
this package; the core never imports an extension.  Modules are light to import: optional
dependencies (ariadne...) are imported inside ``init_app``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from flask import Flask

from zotpy.config.model import Config
from zotpy.extensions import mgmt, scrub, search, userprefs
from zotpy.meta.hooks import MetaHooks
from zotpy.meta.store import MetaStore
from zotpy.registry import Registry

__all__ = ["KNOWN", "Access", "ExtensionContext", "discover_endpoints", "enabled", "init_app",
           "needs_metadata"]

KNOWN: tuple[ModuleType, ...] = (search, mgmt, scrub, userprefs)
"""Every extension zotpy has, in the order zot lists their discover endpoints."""


def _allow(_identity: Any, _repo: str) -> bool:
    return True


@dataclass(frozen=True)
class Access:
    """The one place resolvers ask what the caller may see and do.

    The defaults serve an open registry (every caller anonymous, everything allowed); with
    authentication or access control configured, ``zotpy.app`` passes the request guard's functions
    (``identity()`` is the caller's ``zotpy.auth.Identity``, whose ``str`` is the username).
    """

    identity: Callable[[], Any] = lambda: None
    can_read: Callable[[Any, str], bool] = _allow
    can_delete: Callable[[Any, str], bool] = _allow


@dataclass(frozen=True)
class ExtensionContext:
    """What an extension gets from the application factory."""

    config: Config
    registry: Registry
    meta: MetaStore | None = None
    hooks: MetaHooks | None = None
    access: Access = field(default_factory=Access)
    enabled: tuple[str, ...] = ()


def enabled(config: Config) -> list[ModuleType]:
    return [module for module in KNOWN if module.is_enabled(config)]


def needs_metadata(config: Config) -> bool:
    """True when an enabled extension answers from the metadata database."""
    return any(module.NEEDS_METADATA for module in enabled(config))


def discover_endpoints(config: Config) -> list[str]:
    return [path for module in enabled(config) for path in module.endpoints(config)]


def init_app(app: Flask, ctx: ExtensionContext) -> None:
    for module in enabled(ctx.config):
        module.init_app(app, ctx)
