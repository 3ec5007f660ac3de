"""Fixtures for the integration suite: isolated container tools."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.clients import ContainerTools


@pytest.fixture
def tools(tmp_path: Path) -> Iterator[ContainerTools]:
    """skopeo/podman/buildah with a private policy, registries.conf and vfs storage under ``tmp_path``."""
    tools = ContainerTools(tmp_path / "containers")
    try:
        yield tools
    finally:
        tools.close()
