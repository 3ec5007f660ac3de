"""Throttling of repeated authentication failures per client address.

The client address is the TCP peer, or the last ``X-Forwarded-For`` hop not itself a trusted proxy
when the peer is one (``ZOTPY_TRUSTED_PROXIES``: comma-separated addresses or CIDR networks).
``ZOTPY_AUTH_FAILURES`` (``<count>/<seconds>``, default ``10/60``; ``0`` switches throttling off) sets
how many failures a client may have within the window before its credentialed requests get 429
TOOMANYREQUESTS until the window has passed.  Failures are recorded in the database, so every worker
process counts the same failures.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Mapping
from typing import Any

from zotpy.errors import ConfigError
from zotpy.meta.authmodels import AuthTables

TRUSTED_PROXIES_ENV = "ZOTPY_TRUSTED_PROXIES"
FAILURES_ENV = "ZOTPY_AUTH_FAILURES"
DEFAULT_LIMIT = 10
DEFAULT_WINDOW = 60.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{TRUSTED_PROXIES_ENV}: {item!r} is not an address or network") from None
    return tuple(networks)


def parse_limit(text: str) -> tuple[int, float]:
    text = text.strip()
    if text in ("", "0"):
        return 0, DEFAULT_WINDOW
    count, _, window = text.partition("/")
    try:
        limit, seconds = int(count), float(window or DEFAULT_WINDOW)
    except ValueError:
        raise ConfigError(f"{FAILURES_ENV}: expected <count>/<seconds>, got {text!r}") from None
    if limit < 0 or seconds <= 0:
        raise ConfigError(f"{FAILURES_ENV}: count must be >= 0 and seconds > 0")
    return limit, seconds


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


class FailureThrottle:
    """Counts authentication failures per client; ``retry_after`` says when a client must wait."""

    def __init__(self, tables: AuthTables, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.tables = tables
        self.trusted = parse_networks(env.get(TRUSTED_PROXIES_ENV, ""))
        self.limit, self.window = parse_limit(env.get(FAILURES_ENV, f"{DEFAULT_LIMIT}/{DEFAULT_WINDOW:g}"))

    def _is_trusted(self, text: str) -> bool:
        address = _address(text)
        return address is not None and any(address in network for network in self.trusted)

    def client(self, environ: Mapping[str, Any]) -> str:
        """The caller's address, looking through trusted proxies only."""
        original = environ.get("werkzeug.proxy_fix.orig") or {}
        peer = str(original.get("REMOTE_ADDR") or environ.get("REMOTE_ADDR", ""))
        if not self.trusted or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in str(environ.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop if _address(hop) is not None else peer
        return peer

    def retry_after(self, client: str) -> float:
        """Seconds ``client`` must wait before trying again (0: it may try now)."""
        if self.limit <= 0:
            return 0.0
        now = time.time()
        table = self.tables.failure
        recent = (table.select(table.at).where((table.client == client) & (table.at > now - self.window))
                  .order_by(table.at.desc()).limit(self.limit))
        stamps = list(recent.scalars())
        if len(stamps) < self.limit:
            return 0.0
        return max(min(stamps) + self.window - now, 0.0)

    def failed(self, client: str) -> None:
        if self.limit <= 0:
            return
        now = time.time()
        table = self.tables.failure
        with self.tables.db.atomic():
            table.insert(client=client, at=now).execute()
            # Old failures of anyone are dropped as new ones come: the table stays small.
            table.delete().where(table.at <= now - self.window).execute()
