"""Test environment checks: required tools and free ports."""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def in_ci() -> bool:
    """True when running under CI, where a missing tool or service is a failure, never a skip."""
    return bool(os.environ.get("CI"))


def missing(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_tool(name: str) -> str:
    """Return the path of executable ``name``; skip the test without it (fail under CI)."""
    path = shutil.which(name)
    if path is None:
        missing(f"required tool {name!r} is not installed")
    assert path is not None
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
