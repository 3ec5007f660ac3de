"""Fixtures for the API tests: an app per test over a temporary root, driven through
the Flask test client by `oci_api_client.Registry`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from oci_api_client import Registry
from zotpy.app import create_app, prepare
from zotpy.config.model import Config, GlobalStorageConfig, HTTPConfig, StorageConfig


@pytest.fixture
def make_registry(tmp_path: Path) -> Callable[..., Registry]:
    """Build an app over `root` (default tmp_path/"root") and return a Registry client."""

    def _make(*, compat: tuple[str, ...] = ("docker2s2",), dedupe: bool = True,
              sub_paths: dict[str, StorageConfig] | None = None, root: Path | None = None,
              before_prepare: Callable[[Path], None] | None = None) -> Registry:
        root = root or tmp_path / "root"
        root.mkdir(parents=True, exist_ok=True)
        if before_prepare is not None:
            before_prepare(root)
        cfg = Config(
            storage=GlobalStorageConfig(root_directory=str(root), dedupe=dedupe, gc=False,
                                        sub_paths=sub_paths or {}),
            http=HTTPConfig(compat=compat),
        )
        prepare(cfg)
        app = create_app(cfg)
        app.testing = True
        return Registry(app, root, forbidden=[str(tmp_path)])

    return _make


@pytest.fixture
def reg(make_registry) -> Registry:
    return make_registry()


@pytest.fixture
def stream_environ() -> dict:
    """WSGI environ for a chunked-transfer request body, as gunicorn presents it."""
    return {"wsgi.input_terminated": True}

