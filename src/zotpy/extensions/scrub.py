"""``extensions.scrub``: periodic integrity checks of every stored image (no HTTP endpoints).

The work itself is ``zotpy.storage.scrub``; it runs in the scheduler process, never in a worker, since
re-hashing whole blobs is CPU-heavy. This module says whether it runs and how often, as zot does:
enabled when the section is present (``enable`` defaults to true), ``interval`` 24h, at least 2h.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from flask import Flask

from zotpy.config.model import Config

if TYPE_CHECKING:
    from zotpy.extensions import ExtensionContext

NAME = "scrub"
NEEDS_METADATA = False
DEFAULT_INTERVAL = 24 * 3600.0
MIN_INTERVAL = 2 * 3600.0
PROBE_TIMEOUT = 1.0


def is_enabled(config: Config) -> bool:
    section = config.extensions.get("scrub")
    return section is not None and bool(section.get("enable", True))


def interval(config: Config) -> float:
    """Seconds between scrub passes: the configured interval, raised to zot's 2h minimum."""
    section = config.extensions.get("scrub") or {}
    configured = section.get("interval")
    return DEFAULT_INTERVAL if configured is None else max(float(configured), MIN_INTERVAL)


def endpoints(config: Config) -> list[str]:
    return []


def init_app(app: Flask, ctx: ExtensionContext) -> None:
    """Nothing in the web workers: scrub is background work only."""


def server_listening(config: Config) -> str | None:
    """``host:port`` when something accepts connections at the configured HTTP address, else None.

    ``zotpy scrub`` refuses to run then, like ``zot scrub``: a live server may be changing the root.
    A wildcard bind address is probed on the loopback interface.
    """
    host = config.http.address
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "::1"
    try:
        with socket.create_connection((host, config.http.port), timeout=PROBE_TIMEOUT):
            return f"{host}:{config.http.port}"
    except OSError:
        return None
