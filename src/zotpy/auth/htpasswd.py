"""The htpasswd password backend (``http.auth.htpasswd.path``): bcrypt and SHA-crypt entries.

The file is re-read when its identity (inode, size, modification time) changes, checked at most
once a second.  Hash checks run off the event loop; successful checks are remembered for a short
while under a keyed hash of user and password, so a client pushing many layers pays for one check.
An unknown user costs one hash check too (against another entry's hash), so response times do not
tell which usernames exist.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time

import bcrypt

from zotpy.auth import shacrypt
from zotpy.errors import ConfigError
from zotpy.offload import off_loop

log = logging.getLogger(__name__)

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
BCRYPT_MAX_PASSWORD = 72
CACHE_SECONDS = 30.0
CACHE_SIZE = 1024
STAT_INTERVAL = 1.0
FALLBACK_COST = 10


def check_hash(password: str, hashed: str) -> bool:
    """True when ``password`` matches one htpasswd hash (bcrypt or SHA-crypt); False otherwise."""
    secret = password.encode()
    if hashed.startswith(BCRYPT_PREFIXES):
        if len(secret) > BCRYPT_MAX_PASSWORD:
            return False
        candidate = hashed.encode()
        if candidate.startswith(b"$2y$"):
            candidate = b"$2b$" + candidate[4:]  # the same algorithm under Apache's name
        try:
            return bcrypt.checkpw(secret, candidate)
        except ValueError:
            return False
    if shacrypt.is_sha_crypt(hashed):
        return shacrypt.verify(secret, hashed)
    return False


def parse(text: str) -> dict[str, str]:
    """``user:hash`` lines; blank lines and ``#`` comments are skipped, unsupported hashes dropped."""
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            log.warning("htpasswd line ignored: no user:hash", extra={"line": number})
            continue
        if not (hashed.startswith(BCRYPT_PREFIXES) or shacrypt.is_sha_crypt(hashed)):
            log.warning("htpasswd line ignored: only bcrypt and SHA-crypt hashes are accepted",
                        extra={"line": number, "user": user})
            continue
        entries[user] = hashed
    return entries


def _unreadable(path: str, exc: OSError) -> ConfigError:
    return ConfigError(f"http.auth.htpasswd.path: cannot read {path}: {exc.strerror}")


def _random_hash() -> str:
    """A bcrypt hash of a random secret: what unknown users are checked against in an empty file."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(FALLBACK_COST)).decode()


class HtpasswdBackend:
    """``check(username, password)``: groups (none from htpasswd) on success, None otherwise."""


    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, str] = {}
        self._dummy = ""
        self._identity: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self._cache: dict[bytes, float] = {}
        self._cache_key = secrets.token_bytes(32)
        self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < STAT_INTERVAL:
            return
        self._checked_at = now
        try:
            info = os.stat(self.path)
        except OSError as exc:
            if force:
                raise _unreadable(self.path, exc) from None
            log.error("htpasswd file unreadable; keeping the previous entries", extra={"path": self.path})
            return
        identity = (info.st_ino, info.st_size, info.st_mtime_ns)
        if identity == self._identity:
            return
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                entries = parse(handle.read())
        except OSError as exc:
            if force:
                raise _unreadable(self.path, exc) from None
            return
        with self._lock:
            self._entries = entries
            self._identity = identity
            self._cache.clear()  # a changed or removed password must stop working at once
            # Unknown users are checked against a real entry, so they cost what a wrong password costs.
            self._dummy = next(iter(entries.values()), "") or self._dummy or _random_hash()
        if not force:
            log.info("htpasswd file reloaded", extra={"path": self.path, "users": len(entries)})

    def _key(self, username: str, password: str) -> bytes:
        return hmac.new(self._cache_key, f"{username}\0{password}".encode(), hashlib.sha256).digest()

    def check(self, username: str, password: str) -> frozenset[str] | None:
        self._reload()
        key = self._key(username, password)
        now = time.monotonic()
        expires = self._cache.get(key)
        if expires is not None and expires > now:
            return frozenset()
        hashed = self._entries.get(username)
        ok = off_loop(check_hash, password, hashed if hashed is not None else self._dummy)
        if not ok or hashed is None:
            return None
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache = {k: v for k, v in self._cache.items() if v > now}
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
            self._cache[key] = now + CACHE_SECONDS
        return frozenset()

    def has_user(self, username: str) -> bool:
        self._reload()
        return username in self._entries
