"""Write htpasswd files for tests: bcrypt via the ``bcrypt`` package, SHA-crypt via ``openssl passwd``."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Mapping
from pathlib import Path

import bcrypt

from helpers.env import require_tool


def bcrypt_hash(password: str, cost: int = 4, prefix: str = "$2y$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
    return prefix + hashed[4:]


def sha_crypt_hash(password: str, variant: int = 5, salt: str = "zotpysalt") -> str:
    """``$5$`` or ``$6$`` from openssl, an implementation independent of zotpy's."""
    openssl = require_tool("openssl")
    out = subprocess.run([openssl, "passwd", f"-{variant}", "-salt", salt, "-stdin"], input=password,
                         capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.strip()


def write_htpasswd(path: Path, users: Mapping[str, str], cost: int = 4) -> Path:
    """``user:bcrypt`` lines for ``users`` (name -> password)."""
    path.write_text("".join(f"{user}:{bcrypt_hash(password, cost)}\n" for user, password in users.items()))
    return path


def basic(user: str, password: str) -> dict[str, str]:
    """An ``Authorization`` header for Basic credentials."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
